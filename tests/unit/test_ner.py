"""NER (sequence labelling) pieces: the reader and its errors, label alignment with multi-piece
tokens, truncation, the collator, entity-level metrics, the prediction format and the head."""

import json

import numpy as np
import pytest
import torch

from uer.config import config_from_dict
from uer.data.tokenizers import BertTokenizer
from uer.data.vocab import Vocab
from uer.errors import ConfigError, DataError
from uer.tasks.metrics import bio_entities, entity_metrics
from types import SimpleNamespace
from uer.tasks.base import TaskData
from uer.tasks.tagging import IGNORE, Tagger, TaggingCollator, TaggingTask, label2id_from_tags, read_label2id

VOCAB = Vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "北", "京", "在", "中", "国", "bei", "##jing", "a"])
TOKENIZER = BertTokenizer(VOCAB)
L2I = {"O": 0, "B-LOC": 1, "I-LOC": 2}


def write(path, rows, header="text_a\tlabel"):
    path.write_text("\n".join([header] + rows) + "\n", encoding="utf-8")
    return str(path)


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------

def test_characters_map_to_ids_and_cls_label_is_ignored(tmp_path):
    path = write(tmp_path / "t.tsv", ["北 京 在 中 国\tB-LOC I-LOC O B-LOC I-LOC"])
    [ex] = TaggingTask(TOKENIZER, 16, dict(L2I), "test").read(path, "train")
    assert ex["src"].tolist() == [2, 5, 6, 7, 8, 9]
    assert ex["label"].tolist() == [IGNORE, 1, 2, 0, 1, 2]
    assert ex["heads"].tolist() == [1, 2, 3, 4, 5] and ex["tokens_num"] == 5


def test_multi_piece_token_labels_its_first_piece_only_and_unknown_becomes_unk(tmp_path):
    # "Beijing" is not in the vocabulary: the tokenizer splits it into bei ##jing; "东" is unknown.
    path = write(tmp_path / "t.tsv", ["在 Beijing 东 a\tO B-LOC B-LOC O"])
    [ex] = TaggingTask(TOKENIZER, 16, dict(L2I), "test").read(path, "train")
    assert ex["src"].tolist() == [2, 7, 10, 11, 1, 12]
    assert ex["label"].tolist() == [IGNORE, 0, 1, IGNORE, 1, 0]
    assert ex["heads"].tolist() == [1, 2, 4, 5]


def test_truncation_keeps_whole_prefix_and_predictions_pad_with_o(tmp_path):
    path = write(tmp_path / "t.tsv", ["北 京 在 中 国\tB-LOC I-LOC O B-LOC I-LOC"])
    task = TaggingTask(TOKENIZER, 4, dict(L2I), "test")
    [ex] = task.read(path, "dev")
    assert ex["src"].tolist() == [2, 5, 6, 7] and ex["label"].tolist() == [IGNORE, 1, 2, 0]
    logits = np.zeros((1, 8, 3))
    logits[0, [1, 2, 3], [1, 2, 1]] = 5.0
    assert task.prediction_lines(TaskData([ex]), logits) == ["B-LOC I-LOC B-LOC O O"]


def test_token_and_tag_counts_must_agree(tmp_path):
    path = write(tmp_path / "t.tsv", ["北 京\tB-LOC I-LOC", "北 京 在\tB-LOC I-LOC"])
    with pytest.raises(DataError, match=r"t.tsv line 3: 3 tokens in text_a but 2 tags"):
        TaggingTask(TOKENIZER, 16, dict(L2I), "x").read(path, "train")


def test_unknown_tag_names_the_tag_and_the_label2id_file(tmp_path):
    l2i = tmp_path / "label2id.json"
    l2i.write_text(json.dumps(L2I))
    args = type("A", (), {"label2id_path": str(l2i), "seq_length": 16})()
    task = TaggingTask.from_args(TOKENIZER, args, {})
    path = write(tmp_path / "t.tsv", ["北 京\tB-PER I-PER"])
    with pytest.raises(DataError, match=r"line 2: tag 'B-PER' is not in --label2id_path .*label2id.json"):
        task.read(path, "dev")


def test_label2id_built_from_train_with_o_first_then_checked_on_dev(tmp_path):
    task = TaggingTask(TOKENIZER, 16)
    task.read(write(tmp_path / "train.tsv", ["北 京 在\tI-LOC B-LOC O"]), "train")
    assert task.label2id == {"O": 0, "B-LOC": 1, "I-LOC": 2} == label2id_from_tags(["I-LOC", "B-LOC"])
    assert task.info() == {"label2id": task.label2id} and (task.prepare(TaskData([]), config := SimpleNamespace()) or config.labels_num) == 3
    with pytest.raises(DataError, match=r"tag 'B-ORG' is not in the tags of --train_path .*train.tsv"):
        task.read(write(tmp_path / "dev.tsv", ["北\tB-ORG"]), "dev")


def test_unlabelled_file_and_missing_label_column(tmp_path):
    path = write(tmp_path / "t.tsv", ["北 京"], header="text_a")
    task = TaggingTask(TOKENIZER, 16, dict(L2I), "x")
    [ex] = task.read(path, "infer")
    assert "label" not in ex and ex["tokens_num"] == 2
    with pytest.raises(DataError, match="lacks column"):
        task.read(path, "train")


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('["O", "B-LOC"]', "must be a JSON object"),
    ('{"O": 0, "B-LOC": 2}', r"ids must be 0..1"),
])
def test_bad_label2id_files(tmp_path, content, message):
    path = tmp_path / "l.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        read_label2id(str(path))
    with pytest.raises(ConfigError, match="does not exist"):
        read_label2id(str(tmp_path / "missing.json"))


# ------------------------------------------------------------------------------------------------
# collator and model
# ------------------------------------------------------------------------------------------------

def test_collator_pads_labels_with_ignore():
    items = [{"src": np.array([2, 5, 6]), "label": np.array([IGNORE, 1, 2])},
             {"src": np.array([2, 7]), "label": np.array([IGNORE, 0])}]
    batch = TaggingCollator(pad_id=0)(items)
    assert batch["src"].shape == (2, 8) and int(batch["tokens"]) == 5
    assert batch["seg"][1].tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    assert batch["labels"][1].tolist() == [IGNORE, 0] + [IGNORE] * 6


def test_loss_counts_labelled_positions_only():
    config = config_from_dict({"embedding": ["word", "pos", "seg"], "vocab_size": len(VOCAB), "emb_size": 16,
                               "hidden_size": 16, "feedforward_size": 32, "heads_num": 2, "layers_num": 1,
                               "max_seq_length": 16, "dropout": 0.0, "labels_num": 3})
    torch.manual_seed(0)
    model = Tagger(config).eval()
    assert {k for k in model.state_dict() if k.startswith("head.")} == {"head.output.weight", "head.output.bias"}
    batch = TaggingCollator(pad_id=0)([{"src": np.array([2, 5, 6, 7]), "label": np.array([IGNORE, 1, 2, 0])}])
    out = model(batch)
    logits = out["logits"][0, 1:4]
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([1, 2, 0]))
    assert out["logits"].shape == (1, 8, 3)
    assert torch.allclose(out["loss"], expected, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# metrics
# ------------------------------------------------------------------------------------------------

def test_bio_entities_follow_conlleval():
    assert bio_entities("B-LOC I-LOC O B-PER".split()) == {("LOC", 0, 2), ("PER", 3, 4)}
    # I- without a B- starts an entity; I- of another type ends the current one and starts a new one
    assert bio_entities("I-LOC I-LOC O".split()) == {("LOC", 0, 2)}
    assert bio_entities("B-LOC I-PER I-PER".split()) == {("LOC", 0, 1), ("PER", 1, 3)}
    # B- right after B- of the same type: two entities
    assert bio_entities("B-LOC B-LOC I-LOC".split()) == {("LOC", 0, 1), ("LOC", 1, 3)}
    assert bio_entities("O O".split()) == set()


def test_entity_metrics_on_hand_made_cases():
    gold = ["B-LOC I-LOC O B-PER I-PER O".split(), "B-ORG I-ORG I-ORG O".split()]
    pred = ["B-LOC I-LOC O B-LOC I-LOC O".split(),      # LOC exact; PER span right, type wrong
            "B-ORG I-ORG O O".split()]                  # ORG span partial -> wrong
    m = entity_metrics(gold, pred)
    assert m["precision"] == pytest.approx(1 / 3) and m["recall"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(1 / 3) and m["entities"] == 3
    assert m["accuracy"] == pytest.approx(7 / 10)
    # an I- start that matches the gold span counts as correct (conlleval)
    assert entity_metrics(["B-LOC I-LOC".split()], ["I-LOC I-LOC".split()])["f1"] == 1.0
    # predicting all O: F1 0, token accuracy = share of O
    all_o = entity_metrics(gold, [["O"] * len(g) for g in gold])
    assert all_o["f1"] == 0.0 and all_o["precision"] == 0.0 and all_o["accuracy"] == pytest.approx(3 / 10)


def test_task_metrics_read_labelled_positions_only():
    task = TaggingTask(TOKENIZER, 16, dict(L2I), "x")
    labels = [np.array([IGNORE, 1, IGNORE, 2, 0])]
    predictions = [[2, 1, 0, 2, 0, 1, 1, 1]]       # [CLS], the extra piece and padding are ignored
    logits = np.eye(3)[np.asarray(predictions)]
    m = task.evaluate(TaskData([{"label": label} for label in labels]), logits)
    assert m["f1"] == 1.0 and m["accuracy"] == 1.0


def test_inference_without_label_names_or_with_the_wrong_count_is_refused():
    config = config_from_dict({"embedding": ["word", "pos", "seg"], "vocab_size": len(VOCAB), "emb_size": 16,
                               "hidden_size": 16, "feedforward_size": 32, "heads_num": 2, "layers_num": 1,
                               "max_seq_length": 16, "labels_num": 5})
    with pytest.raises(ConfigError, match="pass --label2id_path"):
        TaggingTask(TOKENIZER, 16).check_model(config)
    with pytest.raises(ConfigError, match="has 3 tags but the model has labels_num 5"):
        TaggingTask(TOKENIZER, 16, dict(L2I), "--label2id_path l.json").check_model(config)


def test_a_given_label2id_must_equal_the_saved_one(tmp_path):
    path = tmp_path / "label2id.json"
    path.write_text(json.dumps({"O": 0, "I-LOC": 1, "B-LOC": 2}))      # same tags, another order
    args = type("A", (), {"label2id_path": str(path), "seq_length": 16})()
    with pytest.raises(ConfigError, match="differs from the label2id the model was fine-tuned with"):
        TaggingTask.from_args(TOKENIZER, args, {"label2id": L2I})
    path.write_text(json.dumps(L2I))
    assert TaggingTask.from_args(TOKENIZER, args, {"label2id": L2I}).label2id == L2I

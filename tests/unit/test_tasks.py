"""Classification task pieces: metrics, pair encoding and truncation, the collator, TSV reading."""

import numpy as np
import pytest

from uer.data.tokenizers import SpaceTokenizer
from uer.data.vocab import Vocab
from uer.errors import DataError
from uer.tasks.classification import ClassificationCollator, ClassificationTask, encode_pair, format_predictions
from uer.tasks.metrics import classification_metrics

VOCAB = Vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(20)])
TOKENIZER = SpaceTokenizer(VOCAB, do_lower_case=False)


def test_metrics_match_a_hand_computation():
    labels = [0, 0, 1, 1, 2, 2]
    preds = [0, 1, 1, 1, 0, 2]
    m = classification_metrics(labels, preds)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # per class F1: 0 -> p 1/2 r 1/2 = .5; 1 -> p 2/3 r 1 = .8; 2 -> p 1 r 1/2 = 2/3
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert classification_metrics([1, 1], [1, 1]) == {"accuracy": 1.0, "macro_f1": 1.0, "examples": 2}


def test_encode_single_and_pair_with_truncation_of_the_longer_text():
    single = encode_pair(TOKENIZER, "w1 w2 w3", None, seq_length=16)
    assert list(single["src"]) == [2, 6, 7, 8, 3] and single["seg_a_len"] == 5
    pair = encode_pair(TOKENIZER, " ".join(f"w{i}" for i in range(10)), "w1 w2", seq_length=8)
    src = list(pair["src"])
    assert len(src) == 8 and src[0] == 2 and src.count(3) == 2
    assert pair["seg_a_len"] == 5 and src[-3:] == [6, 7, 3]      # b kept whole, a cut to 3 tokens


def test_collator_segments_and_labels():
    items = [dict(encode_pair(TOKENIZER, "w1 w2", "w3", 16), label=1), dict(encode_pair(TOKENIZER, "w4", None, 16), label=0)]
    batch = ClassificationCollator(pad_id=0)(items)
    assert batch["src"].shape == (2, 8)
    assert batch["seg"][0].tolist() == [1, 1, 1, 1, 2, 2, 0, 0] and batch["seg"][1].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert batch["labels"].tolist() == [1, 0] and int(batch["tokens"]) == 9


def test_reader_columns_in_any_order_and_blank_lines(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("text_b\tlabel\ttext_a\nw1\t1\tw2 w3\n\nw4\t0\tw5\n", encoding="utf-8")
    examples = ClassificationTask(TOKENIZER, 16).read(str(path), "train")
    assert [e["label"] for e in examples] == [1, 0]
    assert list(examples[0]["src"]) == [2, 7, 8, 3, 6, 3]


def test_reader_without_labels_for_inference_and_unknown_label(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("text_a\nw1 w2\n", encoding="utf-8")
    assert len(ClassificationTask(TOKENIZER, 16).read(str(path), "infer")) == 1
    with pytest.raises(DataError, match="lacks column"):
        ClassificationTask(TOKENIZER, 16).read(str(path), "test")
    labelled = tmp_path / "l.tsv"
    labelled.write_text("label\ttext_a\n0\tw1\n3\tw2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 3: label 3 is outside 0\.\.1"):
        ClassificationTask(TOKENIZER, 16, labels_num=2).read(str(labelled), "dev")


def test_prediction_lines():
    lines = format_predictions(np.array([[0.0, 2.0], [1.0, -1.0]]), True, True)
    assert lines[0] == "label\tlogits\tprob"
    assert lines[1].split("\t")[0] == "1" and lines[2].split("\t")[0] == "0"
    assert sum(map(float, lines[1].split("\t")[2].split())) == pytest.approx(1.0, abs=1e-5)


def test_classification_logs_the_confusion_matrix_and_per_class_scores():
    from uer.tasks.base import TaskData
    data = TaskData([{"label": 0}, {"label": 1}, {"label": 1}], split="dev")
    outputs = np.array([[2.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
    lines = ClassificationTask(TOKENIZER, 16).log_details(data, outputs)
    text = "\n".join(lines)
    assert [int(v) for v in lines[2].split()] == [0, 1, 0] and [int(v) for v in lines[3].split()] == [1, 1, 1]
    assert "0.5000" in lines[-1] and lines[-1].split()[-1] == "2"     # class 1: recall 1/2, support 2


def test_dbqa_ranks_each_questions_candidates_by_the_positive_probability():
    from uer.tasks.base import TaskData
    from uer.tasks.dbqa import DbqaTask
    data = TaskData([{"qid": "a", "label": 0}, {"qid": "a", "label": 1}, {"qid": "b", "label": 1},
                     {"qid": "b", "label": 0}, {"qid": "c", "label": 0}], split="dev")
    outputs = np.array([[0.0, 2.0], [0.0, 1.0], [0.0, 3.0], [0.0, -1.0], [0.0, 0.0]])
    scores = DbqaTask(TOKENIZER, 16).evaluate(data, outputs)
    # a: the positive is ranked 2nd -> AP 1/2, RR 1/2; b: ranked 1st -> 1, 1; c has no positive: skipped
    assert scores["map"] == pytest.approx(0.75) and scores["mrr"] == pytest.approx(0.75)

"""The multiple-choice task families (uer.tasks.multiple_choice, c3, chid): readers' errors name the
file and the document / question / line, collation shapes and masking, the head's masked logits,
accuracy on hand-made outputs, ChID's distinct-candidate assignment and both prediction formats."""

import json

import numpy as np
import pytest
import torch

from uer.config import config_from_dict
from uer.data.tokenizers import build_tokenizer
from uer.errors import ConfigError, DataError
from uer.tasks.c3 import C3Task
from uer.tasks.chid import ChidTask, assign_distinct, context_window
from uer.tasks.multiple_choice import MASKED, ChoiceScorerHead, MultipleChoiceCollator, choice_accuracy, encode_choice

WORDS = [f"w{i}" for i in range(20)]


@pytest.fixture()
def tokenizer(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n", encoding="utf-8")
    return build_tokenizer("bert", str(vocab), None, True)


def dump(tmp_path, name, obj):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return str(path)


def c3_doc(questions, lines=("w1 w2 w3", "w4 w5"), doc_id="d0"):
    return [list(lines), questions, doc_id]


GOOD_Q = {"question": "w6 w7", "choice": ["w1", "w8", "w9"], "answer": "w1"}


# ------------------------------------------------------------------------------------------------ encoding


def test_encode_choice_order_segments_and_truncation(tokenizer):
    vocab = tokenizer.vocab
    out = encode_choice(vocab, [10], [11, 12], [13, 14, 15], seq_length=32)
    assert out["src"].tolist() == [vocab.cls_id, 10, vocab.sep_id, 11, 12, vocab.sep_id, 13, 14, 15, vocab.sep_id]
    assert out["seg_a_len"] == 6                    # [CLS] choice [SEP] question [SEP] is segment A (UER-py C3)
    one = encode_choice(vocab, [10], [11, 12], [13], seq_length=32, segment_a_parts=1)
    assert one["seg_a_len"] == 3                    # ChID: [CLS] candidate [SEP]
    cut = encode_choice(vocab, [10], [11, 12], [13, 14, 15], seq_length=8)
    assert cut["src"].tolist() == [vocab.cls_id, 10, vocab.sep_id, 11, 12, vocab.sep_id, 13, vocab.sep_id]
    tight = encode_choice(vocab, [10, 10], [11, 12, 12], [13], seq_length=8)
    assert len(tight["src"]) == 8 and tight["src"].tolist()[-1] == vocab.sep_id   # document gone, then question cut


# ------------------------------------------------------------------------------------------------ C3 reader


def test_c3_reader_labels_ids_and_padding_choices(tokenizer, tmp_path):
    path = dump(tmp_path, "dev.json", [c3_doc([GOOD_Q, dict(GOOD_Q, answer="w9")]),
                                       c3_doc([{"question": "w1", "choice": ["w2", "w3"], "answer": "w3"}], doc_id=7)])
    data = C3Task(tokenizer, 32).read(path, "dev")
    assert [e["label"] for e in data.examples] == [0, 2, 1]
    assert [e["qid"] for e in data.examples] == ["d0-0", "d0-1", "7-0"]
    assert [len(e["choices"]) for e in data.examples] == [3, 3, 2]
    test = dump(tmp_path, "test.json", [c3_doc([{"question": "w1", "choice": ["w2", "w3"], "id": 508}])])
    infer = C3Task(tokenizer, 32).read(test, "infer")
    assert infer.examples[0]["qid"] == 508 and "label" not in infer.examples[0]


@pytest.mark.parametrize("content,expected", [
    ('[[["w1"], [', r"bad\.json is not valid JSON: .* line 1 column"),
    ({"data": []}, r"bad\.json: expected a C3 JSON list"),
    ([c3_doc([GOOD_Q]), "oops"], r"bad\.json: document 1 must be a list"),
    ([c3_doc([GOOD_Q]), c3_doc([GOOD_Q, {"question": "w1", "choice": ["w2"]}])],
     r"bad\.json: document 1 question 1 has no 'answer' key"),
    ([c3_doc([{"choice": ["w2"], "answer": "w2"}])], r"bad\.json: document 0 question 0 has no 'question' key"),
    ([c3_doc([GOOD_Q, dict(GOOD_Q, answer="w19")])],
     r"bad\.json: document 0 question 1: the answer \"w19\" is not one of its choices"),
    ([c3_doc([dict(GOOD_Q, choice=["w1", "w2", "w3", "w4", "w5"])])],
     r"bad\.json: document 0 question 0 has 5 choices, more than --max_choices_num 4"),
    ([c3_doc([dict(GOOD_Q, choice="w1")])], r"bad\.json: document 0 question 0: \"choice\" must be a non-empty list"),
    ([], r"bad\.json holds no question"),
])
def test_c3_reader_errors_name_file_and_position(tokenizer, tmp_path, content, expected):
    path = dump(tmp_path, "bad.json", content)
    with pytest.raises(DataError, match=r"--dev_path .*" + expected):
        C3Task(tokenizer, 32).read(path, "dev")


def test_c3_missing_file_and_infer_needs_no_answer(tokenizer, tmp_path):
    with pytest.raises(DataError, match=r"--test_path .*nope\.json does not exist"):
        C3Task(tokenizer, 32).read(str(tmp_path / "nope.json"), "infer")
    path = dump(tmp_path, "t.json", [c3_doc([{"question": "w1", "choice": ["w2", "w3"]}])])
    assert C3Task(tokenizer, 32).read(path, "infer").examples[0]["qid"] == "d0-0"
    with pytest.raises(ConfigError, match="--seq_length 4"):
        C3Task(tokenizer, 4)


# ------------------------------------------------------------------------------------------------ collation and head


def test_collator_shapes_and_choice_mask(tokenizer, tmp_path):
    path = dump(tmp_path, "dev.json", [c3_doc([GOOD_Q, {"question": "w1", "choice": ["w2", "w3"], "answer": "w3"}])])
    task = C3Task(tokenizer, 32)
    data = task.read(path, "dev")
    batch = task.collator()(data.examples, [0, 1], 0)
    assert batch["choice_mask"].tolist() == [[True, True, True, False], [True, True, False, False]]
    assert batch["src"].shape[0] == 5 and batch["src"].shape == batch["seg"].shape   # only the real choices
    assert batch["src"].shape[1] % 8 == 0
    assert batch["labels"].tolist() == [0, 1]
    assert int(batch["tokens"]) == int((batch["seg"] > 0).sum())
    first = data.examples[0]["choices"][0]
    n, a = len(first["src"]), first["seg_a_len"]
    assert batch["seg"][0, :a].eq(1).all() and batch["seg"][0, a:n].eq(2).all() and batch["seg"][0, n:].eq(0).all()
    with pytest.raises(DataError, match="more than --max_choices_num 2"):
        MultipleChoiceCollator(0, 2)(data.examples)


def test_head_masks_padded_choices_and_trains():
    config = config_from_dict({"emb_size": 8, "hidden_size": 8, "feedforward_size": 16, "heads_num": 2,
                               "layers_num": 1, "vocab_size": 30, "dropout": 0.0})
    head = ChoiceScorerHead(config)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    hidden = torch.randn(5, 4, 8, requires_grad=True)
    logits = head(hidden, {"choice_mask": mask})
    assert logits.shape == (2, 3) and logits[0, 2].item() == MASKED
    expected = head.output(hidden[:, 0]).squeeze(-1)
    assert torch.allclose(logits[mask], expected)
    out = head.loss(logits, {"labels": torch.tensor([1, 2])})
    out["loss"].backward()
    assert hidden.grad is not None and torch.isfinite(out["loss"])
    assert torch.softmax(logits[0], -1)[2].item() == 0.0


# ------------------------------------------------------------------------------------------------ metric


def test_accuracy_on_hand_made_outputs(tokenizer):
    outputs = np.array([[0.1, 0.9, MASKED], [2.0, 1.0, 0.0], [0.0, 0.0, 5.0], [1.0, 3.0, MASKED]])
    assert choice_accuracy([1, 0, 1, 0], outputs) == {"accuracy": 0.5, "examples": 4}
    assert choice_accuracy([], np.zeros((0, 3)))["accuracy"] == 0.0


# ------------------------------------------------------------------------------------------------ predictions


def test_c3_prediction_file_is_uer_py_json_lines(tokenizer, tmp_path):
    path = dump(tmp_path, "test.json", [c3_doc([{"question": "w1", "choice": ["w2", "w3"], "id": 5},
                                                {"question": "w1", "choice": ["w2", "w3", "w4"], "id": 6}])])
    task = C3Task(tokenizer, 32)
    data = task.read(path, "infer")
    out = str(tmp_path / "pred.txt")
    task.write_predictions(data, np.array([[0.0, 1.0, MASKED, MASKED], [3.0, 1.0, 2.0, MASKED]]), out)
    assert [json.loads(line) for line in open(out, encoding="utf-8")] == [{"id": 5, "label": 1}, {"id": 6, "label": 0}]


# ------------------------------------------------------------------------------------------------ ChID


def chid_files(tmp_path, lines, answers):
    data = dump(tmp_path, "chid.json", "\n".join(json.dumps(x) if not isinstance(x, str) else x for x in lines) + "\n")
    return data, dump(tmp_path, "answers.json", answers)


def chid_task(tokenizer, answer_path, seq_length=16):
    return ChidTask(tokenizer, seq_length, None, {"train": answer_path, "dev": answer_path})


def test_chid_window_and_other_blanks_masked(tokenizer, tmp_path):
    line = {"candidates": ["w1", "w2", "w3"], "content": ["w5 w6 #idiom000001# w7 #idiom000002# w8"]}
    data_path, answers = chid_files(tmp_path, [line], {"#idiom000001#": 2, "#idiom000002#": 0})
    data = chid_task(tokenizer, answers).read(data_path, "train")
    assert [(e["tag"], e["label"], len(e["choices"])) for e in data.examples] == [
        ("#idiom000001#", 2, 3), ("#idiom000002#", 0, 3)]
    v, ids = tokenizer.vocab, tokenizer.vocab.token_to_id
    first = data.examples[0]["choices"][0]["src"].tolist()
    assert first == [v.cls_id, ids("w1"), v.sep_id, ids("w5"), ids("w6"), v.sep_id, ids("w7"), v.mask_id, ids("w8"),
                     v.sep_id]
    assert data.examples[0]["choices"][0]["seg_a_len"] == 3
    assert context_window([1, 2, 3, 4, 5], [6, 7], 4) == ([4, 5], [6, 7])
    assert context_window([1], [6, 7, 8, 9, 10], 4) == ([1], [6, 7, 8])
    assert context_window([1, 2, 3, 4], [6], 4) == ([2, 3, 4], [6])


@pytest.mark.parametrize("lines,answers,expected", [
    (['{"candidates": ["w1"], "content": ["#idiom000001#"]}', '{"candidates": ['], {"#idiom000001#": 0},
     r"--train_path .*chid\.json line 2: not valid JSON"),
    ([{"candidates": ["w1"], "content": ["w2 #idiom000001#"]}, {"content": ["#idiom000002#"]}], {"#idiom000001#": 0},
     r"chid\.json line 2: expected an object with \"candidates\" and \"content\""),
    ([{"candidates": ["w1", "w2"], "content": ["w2 #idiom000001#"]}], {},
     r"--train_answer_path .*answers\.json has no answer for #idiom000001# \(--train_path .*chid\.json line 1"),
    ([{"candidates": ["w1", "w2"], "content": ["w2 #idiom000001#"]}], {"#idiom000001#": 2},
     r"answers\.json: the answer of #idiom000001# is 2, but --train_path .*chid\.json line 1 has 2 candidates"),
    ([{"candidates": [f"w{i}" for i in range(11)], "content": ["#idiom000001#"]}], {"#idiom000001#": 0},
     r"chid\.json line 1 has 11 choices, more than --max_choices_num 10"),
    ([{"candidates": ["w1"], "content": ["w2 w3"]}], {}, r"chid\.json line 1: passage 0 has no blank"),
    ([{"candidates": ["w1"], "content": ["#idiom000001#"]}, {"candidates": ["w1"], "content": ["#idiom000001#"]}],
     {"#idiom000001#": 0}, r"chid\.json line 2: blank #idiom000001# already occurs on line 1"),
    ([{"candidates": ["w1"], "content": ["#idiom000001#"]}], {"#idiom000001#": "w1"},
     r"--train_answer_path .*answers\.json: the answer of #idiom000001# is \"w1\""),
    ([{"candidates": ["w1"], "content": ["#idiom000001#"]}], "[1, 2",
     r"--train_answer_path .*answers\.json is not valid JSON: .* line 1 column"),
])
def test_chid_errors_name_file_and_line(tokenizer, tmp_path, lines, answers, expected):
    data_path, answer_path = chid_files(tmp_path, lines, answers)
    with pytest.raises(DataError, match=expected):
        chid_task(tokenizer, answer_path).read(data_path, "train")


def test_chid_needs_answers_for_labelled_splits(tokenizer, tmp_path):
    data_path, _ = chid_files(tmp_path, [{"candidates": ["w1"], "content": ["#idiom000001#"]}], {})
    with pytest.raises(ConfigError, match="--test_answer_path"):
        chid_task(tokenizer, None).read(data_path, "test")
    assert "label" not in chid_task(tokenizer, None).read(data_path, "infer").examples[0]


def test_chid_assignment_gives_each_blank_a_distinct_candidate():
    scores = np.array([[5.0, 4.0, 0.0], [4.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert assign_distinct(scores, 3) == [0, 1, 2]           # blank 1 loses w0 to blank 0 (5.0 > 4.5)
    assert assign_distinct(np.array([[1.0, 2.0], [1.0, 3.0], [0.0, 9.0]]), 2) == [0, 1, 1]   # more blanks than choices
    assert assign_distinct(np.array([[0.0, 1.0, MASKED]]), 2) == [1]


def test_chid_prediction_file_is_uer_py_json(tokenizer, tmp_path):
    lines = [{"candidates": ["w1", "w2", "w3"], "content": ["w5 #idiom000001# w6 #idiom000002#"]},
             {"candidates": ["w1", "w2"], "content": ["#idiom000003#"]}]
    data_path, _ = chid_files(tmp_path, lines, {})
    task = chid_task(tokenizer, None)
    data = task.read(data_path, "infer")
    outputs = np.full((3, 10), MASKED)
    outputs[0, :3] = [3.0, 1.0, 0.0]
    outputs[1, :3] = [2.0, 1.5, 0.0]
    outputs[2, :2] = [0.0, 1.0]
    out = str(tmp_path / "pred.json")
    written = task.write_predictions(data, outputs, out)
    assert written == json.load(open(out)) == {"#idiom000001#": 0, "#idiom000002#": 1, "#idiom000003#": 1}
    assert open(out).read().startswith('{\n  "#idiom000001#": 0')


def test_chid_flags_test_path_needs_its_answers_and_inference_reuses_saved_choices(tokenizer):
    import argparse
    args = argparse.Namespace(seq_length=32, max_choices_num=None, train_answer_path="a.json",
                              dev_answer_path="b.json", test_answer_path=None, test_path="t.json")
    with pytest.raises(ConfigError, match="--test_path is given but not --test_answer_path"):
        ChidTask.from_args(tokenizer, args, {})
    infer_args = argparse.Namespace(seq_length=32, max_choices_num=None, test_path="t.json")
    assert ChidTask.from_args(tokenizer, infer_args, {"max_choices_num": 7}).max_choices_num == 7
    assert C3Task.from_args(tokenizer, infer_args, {}).max_choices_num == 4

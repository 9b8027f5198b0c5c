"""Question answering (uer.tasks.mrc): reader, windows, decoding, CMRC 2018 EM/F1, the span model."""

import json
import logging

import numpy as np
import pytest
import torch

from uer.config import config_from_dict
from uer.data.tokenizers import BertTokenizer
from uer.data.vocab import Vocab
from uer.errors import ConfigError, DataError
from uer.tasks.mrc import (CharEncoder, MrcCollator, MrcTask, Question, SpanExtractor, best_span, cmrc_metrics,
                           decode, encode_question, exact_match, read_squad, span_f1, windows)

CHARS = list("的是在了北京上海天安门广场位于中心一二三四五六七八九十年月日谁哪里什么时候建成") + \
    list("abcdefghijklmnopqrstuvwxyz0123456789")
VOCAB = Vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + CHARS)
TOKENIZER = BertTokenizer(VOCAB)


def write_squad(path, paragraphs):
    path.write_text(json.dumps({"version": "v1", "data": [{"paragraphs": paragraphs}]}, ensure_ascii=False),
                    encoding="utf-8")
    return str(path)


def qa(qid, question, text=None, start=None):
    return {"id": qid, "question": question,
            "answers": [] if text is None else [{"text": text, "answer_start": start}]}


# ------------------------------------------------------------------ reader

def test_reader_keeps_answers_and_skips_misplaced_ones_with_one_warning(tmp_path, caplog):
    context = "天安门广场位于北京中心"
    path = write_squad(tmp_path / "t.json", [{"context": context, "qas": [
        qa("Q1", "天安门广场位于哪里", "北京中心", 7),
        qa("Q2", "什么位于北京", "天安门广场", 3),         # text is at 0, not 3
        qa("Q3", "哪里", "上海", 0)]}])                  # not in the context at all
    with caplog.at_level(logging.WARNING, logger="uer"):
        train = read_squad(path, for_training=True)
    assert [q.qid for q in train] == ["Q1"] and train[0].answer_start == 7
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 2 question" in warnings[0] and "Q2, Q3" in warnings[0]
    assert path in warnings[0]
    # Evaluation needs only the texts: every question is kept.
    assert [q.answers for q in read_squad(path, with_answers=True)] == [["北京中心"], ["天安门广场"], ["上海"]]


def test_reader_errors_name_the_file_and_the_question(tmp_path):
    path = write_squad(tmp_path / "bad.json", [{"context": "北京", "qas": [
        {"id": "Q9", "question": "哪里", "answers": [{"text": "北京", "answer_start": "0"}]}]}])
    with pytest.raises(DataError, match=r"bad\.json.*Q9.*answer_start"):
        read_squad(path)
    path = write_squad(tmp_path / "none.json", [{"context": "北京", "qas": [qa("Q7", "哪里")]}])
    with pytest.raises(DataError, match=r"none\.json.*Q7 has no answer"):
        read_squad(path, with_answers=True)
    assert read_squad(path, with_answers=False)[0].answers == []      # inference files need none
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [', encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.json is not valid JSON"):
        read_squad(str(broken))
    with pytest.raises(DataError, match="does not exist"):
        read_squad(str(tmp_path / "missing.json"))
    path = write_squad(tmp_path / "all_bad.json", [{"context": "北京", "qas": [qa("Q1", "哪里", "上海", 0)]}])
    with pytest.raises(DataError, match="no usable question"):
        read_squad(path, for_training=True)


# ------------------------------------------------------------------ windows

def test_windows_cover_every_token_without_gaps():
    for n, budget, stride in [(0, 5, 2), (5, 5, 2), (23, 7, 3), (23, 7, 10), (100, 9, 9)]:
        spans = windows(n, budget, stride)
        covered = set()
        for start, count in spans:
            assert 0 <= count <= budget
            covered |= set(range(start, start + count))
        assert covered == set(range(n))
        assert spans[-1][0] + spans[-1][1] == n


def test_features_cover_every_context_character_and_answer_positions_map_back():
    context = "一二三 四五六七八九十北京 天安门 广场位于abc中心一二三四五六七八九十年月日是在了"
    answer = "天安门 广场"
    start = context.index(answer)
    encoder = CharEncoder(TOKENIZER)
    q = Question("Q", "天安门广场在哪里", context, [answer], start)
    features, to_char = encode_question(encoder, q, 0, seq_length=20, doc_stride=4, max_query_length=6)
    assert len(features) > 3
    # Every non-whitespace character has a token in some window.
    seen = set()
    for f in features:
        a = f["seg_a_len"]
        assert f["src"][0] == VOCAB.cls_id and f["src"][a - 1] == VOCAB.sep_id and f["src"][-1] == VOCAB.sep_id
        assert len(f["src"]) <= 20 and a == 6 + 2
        for k in range(f["tokens_num"]):
            char = to_char[f["first_token"] + k]
            assert f["src"][a + k] == VOCAB.token_to_id(context[char])
            seen.add(char)
    assert seen == {i for i, ch in enumerate(context) if not ch.isspace()}
    # Windows holding the whole answer point at it; the others at [CLS].
    inside = [f for f in features if f["positions"] != (0, 0)]
    assert inside and len(inside) < len(features)
    for f in inside:
        s, e = f["positions"]
        first = f["first_token"] - f["seg_a_len"]
        assert context[to_char[first + s]:to_char[first + e] + 1] == answer


def test_window_budget_error_is_clear():
    encoder = CharEncoder(TOKENIZER)
    with pytest.raises(ConfigError, match="--seq_length 8 leaves no room"):
        encode_question(encoder, Question("Q", "天安门广场在哪里", "北京"), 0, 8, 4, 64)


# ------------------------------------------------------------------ decoding

def test_best_span_respects_order_and_length():
    start = np.array([0.0, 5.0, 0.0, 0.0, 0.0])
    end = np.array([8.0, 0.0, 0.0, 0.0, 4.0])       # (1, 0) would score 13 but ends before it starts
    assert best_span(start, end, 30)[:2] == (1, 4)
    assert best_span(start, end, 3)[:2] == (0, 0)   # 1..4 is four tokens long
    assert best_span(np.zeros(0), np.zeros(0), 5)[0] == -1


def test_decode_picks_the_best_span_across_windows_and_ignores_the_question():
    context = "北京天安门广场位于北京中心"
    task = MrcTask(TOKENIZER, seq_length=12, doc_stride=3, max_query_length=4, max_answer_length=10)
    q = Question("Q1", "哪里", context, ["北京中心"])
    features, to_char = encode_question(task.encoder, q, 0, 12, 3, 4)
    assert len(features) >= 3
    logits = np.zeros((len(features), 12, 2))
    for f, row in zip(features, logits):
        row[1, :] = 100.0                          # a question token: never an answer
        a = f["seg_a_len"]
        for k in range(f["tokens_num"]):
            char = to_char[f["first_token"] + k]
            if char == 9:                          # "北" of 北京中心, in every window that holds it
                row[a + k, 0] = 2.0
            if char == 12:
                row[a + k, 1] = 2.0 + (f is features[-1])     # the last window scores it highest
            if char == 0:
                row[a + k, 0], row[a + k, 1] = 1.5, 1.5        # a weaker one-character span
    answers = decode([q], features, [to_char], logits, max_answer_length=10)
    assert answers == {"Q1": "北京中心"}
    assert decode([q], features, [to_char], logits, max_answer_length=3) == {"Q1": "北"}


# ------------------------------------------------------------------ metrics

def test_exact_match_and_f1_on_chinese():
    assert exact_match("北京，中心。", "北京中心") == 1.0
    assert exact_match(" 1990年 ", "1990年") == 1.0
    assert exact_match("北京", "北京中心") == 0.0
    assert span_f1("北京中心", "北京中心") == 1.0
    # Longest common run "北京" (2 chars): precision 2/2, recall 2/4.
    assert span_f1("北京", "北京中心") == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert span_f1("上海", "北京中心") == 0.0
    # "1990" is one segment: 1990年 vs 1990年代 -> common 2 of 2 and 3.
    assert span_f1("1990年", "1990年代") == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))
    assert span_f1("！？", "北京") == 0.0


def test_cmrc_metrics_take_the_best_reference_and_count_missing_predictions():
    refs = {"a": ["北京中心", "北京"], "b": ["天安门"], "c": ["上海"]}
    scores = cmrc_metrics(refs, {"a": "北京。", "b": "天安门广场"})
    f1_b = 2 * 1 * 0.6 / 1.6
    assert scores["em"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + f1_b + 0) / 3)
    assert scores["avg"] == pytest.approx((scores["em"] + scores["f1"]) / 2) and scores["questions"] == 3


# ------------------------------------------------------------------ model

def test_span_extractor_loss_and_logits_shape():
    config = config_from_dict({"embedding": ["word", "pos", "seg"], "vocab_size": len(VOCAB), "emb_size": 16,
                               "hidden_size": 16, "feedforward_size": 32, "heads_num": 2, "layers_num": 1,
                               "max_seq_length": 32, "encoder": "transformer", "mask": "fully_visible",
                               "target": ["mlm"]})
    model = SpanExtractor(config)
    assert {k for k in model.state_dict() if k.startswith("head.")} == {"head.qa_outputs.weight", "head.qa_outputs.bias"}
    task = MrcTask(TOKENIZER, 16, 4, 4, 5)
    q = Question("Q", "哪里", "天安门广场位于北京中心", ["北京"], 7)
    batch = MrcCollator(VOCAB.pad_id)(encode_question(task.encoder, q, 0, 16, 4, 4)[0])
    out = model(batch)
    assert out["logits"].shape == (batch["src"].shape[0], batch["src"].shape[1], 2)
    assert batch["labels"].shape == (batch["src"].shape[0], 2) and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert model.head.qa_outputs.weight.grad.abs().sum() > 0

"""PretrainCollator: padding, segment ids, target fields, masked-LM corruption through a real
Vocab, and per-instance determinism whatever the batch."""

import math

import numpy as np
import pytest
import torch

from uer.config import MaskingConfig
from uer.data.collator import PretrainCollator
from uer.data.vocab import Vocab
from uer.errors import ConfigError, DataError
from uer.layers.host_lengths import HostLengths

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "far", "a", "big", "red", "hat"] + [f"w{i}" for i in range(30)]
PIECES = ["##s", "##ed", "##ing", "##ly", "##er"]
VOCAB = Vocab(SPECIALS + WORDS + PIECES)
PAD, UNK, CLS, SEP, MASK = (VOCAB.pad_id, VOCAB.unk_id, VOCAB.cls_id, VOCAB.sep_id, VOCAB.mask_id)
SPECIAL_IDS = np.array(VOCAB.special_ids)
WORD_IDS = np.array([VOCAB.token_to_id(w) for w in WORDS])
PIECE_IDS = np.array([VOCAB.token_to_id(p) for p in PIECES])
BERT_FIELDS = ["seg_a_len", "label"]


def bert_instance(rng, a_len, b_len, label=None):
    a = rng.choice(WORD_IDS, a_len)
    b = rng.choice(WORD_IDS, b_len)
    src = np.concatenate([[CLS], a, [SEP], b, [SEP]]).astype(np.int64)
    return {"src": src, "seg_a_len": a_len + 2, "label": int(rng.integers(0, 2)) if label is None else label}


def collator(targets=("mlm", "sp"), masking=None, seed=7, fields=BERT_FIELDS, vocab=VOCAB, seq_length=128, **kw):
    return PretrainCollator(vocab, list(targets), masking or MaskingConfig(), seed, fields,
                            seq_length=seq_length, **kw)


def test_bert_batch_segments_padding_and_labels():
    rng = np.random.default_rng(0)
    items = [bert_instance(rng, 3, 4, label=1), bert_instance(rng, 5, 1, label=0)]   # 10 and 9 tokens
    out = collator()(items, [0, 1], epoch=0)
    assert set(out) == {"src", "seg", "mlm_positions", "mlm_labels", "sp_labels", "tokens", "seg_lengths"}
    assert out["src"].shape == out["seg"].shape == (2, 16)
    # The real-token counts on the host, for the model's masks (no device-to-host sync there).
    assert out.pop("seg_lengths") == HostLengths((10, 9), 16)
    for v in out.values():
        assert v.dtype == torch.int64
    seg = out["seg"].numpy()
    assert list(seg[0]) == [1] * 5 + [2] * 5 + [0] * 6
    assert list(seg[1]) == [1] * 7 + [2] * 2 + [0] * 7
    assert out["sp_labels"].tolist() == [1, 0]
    assert int(out["tokens"]) == 19
    src = out["src"].numpy()
    assert (src[0, 10:] == PAD).all() and (src[1, 9:] == PAD).all()
    # Specials are never corrupted; MLM labels are the original ids at their positions.
    for i, item in enumerate(items):
        n = len(item["src"])
        special = np.isin(item["src"], SPECIAL_IDS)
        assert np.array_equal(src[i, :n][special], item["src"][special])
        valid = out["mlm_labels"][i].numpy() != -100
        pos = out["mlm_positions"][i].numpy()[valid]
        assert valid.sum() >= 1 and (pos < n).all() and not special[pos].any()
        assert np.array_equal(out["mlm_labels"][i].numpy()[valid], item["src"][pos])


@pytest.mark.parametrize("longest,padded", [(1, 8), (8, 8), (9, 16), (16, 16), (17, 24), (100, 104)])
def test_padded_length_is_a_multiple_of_8(longest, padded):
    items = [{"src": np.full(longest, WORD_IDS[0])}, {"src": np.full(1, WORD_IDS[1])}]
    out = collator(targets=("mlm",), fields=[])(items, [0, 1], 0)
    assert out["src"].shape == (2, padded)
    # Prediction slots are fixed by the dataset's seq_length (128), not by the padded length.
    assert out["mlm_positions"].shape == (2, math.ceil(128 * 0.15))
    assert int(out["tokens"]) == longest + 1
    # Without seg_a_len every real token is segment 1.
    assert (out["seg"][0, :longest] == 1).all() and (out["seg"][0, longest:] == 0).all()


def test_pad_multiple_is_configurable():
    items = [{"src": np.arange(5, 16)}]
    out = collator(targets=("mlm",), fields=[], pad_multiple=1)(items, [0], 0)
    assert out["src"].shape == (1, 11)


def test_lm_batch_shifts_inputs_and_labels():
    items = [{"src": np.arange(5, 15)}, {"src": np.arange(20, 26)}]         # n + 1 = 10 and 6 tokens
    out = collator(targets=("lm",), fields=[])(items, [0, 1], 0)
    assert set(out) == {"src", "seg", "lm_labels", "tokens", "seg_lengths"}
    assert out["seg_lengths"] == HostLengths((9, 5), 16)
    assert out["src"].shape == out["lm_labels"].shape == (2, 16)
    src, labels, seg = out["src"].numpy(), out["lm_labels"].numpy(), out["seg"].numpy()
    assert list(src[0, :9]) == list(range(5, 14)) and (src[0, 9:] == PAD).all()
    assert list(labels[0, :9]) == list(range(6, 15)) and (labels[0, 9:] == -100).all()
    assert list(src[1, :5]) == list(range(20, 25)) and list(labels[1, :5]) == list(range(21, 26))
    assert (labels[1, 5:] == -100).all()
    assert list(seg[0]) == [1] * 9 + [0] * 7 and list(seg[1]) == [1] * 5 + [0] * 11
    assert int(out["tokens"]) == 14


def test_lm_does_not_need_a_mask_token():
    vocab = Vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b"])
    out = collator(targets=("lm",), fields=[], vocab=vocab)([{"src": np.array([2, 4, 5, 3])}], [0], 0)
    assert out["src"][0, :3].tolist() == [2, 4, 5]


@pytest.mark.parametrize("target", ["sp", "cls"])
def test_target_needing_a_label_field_without_it_is_a_config_error(target):
    with pytest.raises(ConfigError, match="label"):
        collator(targets=("mlm", target), fields=["seg_a_len"])


def test_cls_labels():
    rng = np.random.default_rng(1)
    items = [bert_instance(rng, 2, 2, label=3), bert_instance(rng, 2, 2, label=5)]
    out = collator(targets=("cls",), fields=BERT_FIELDS)(items, [0, 1], 0)
    assert out["cls_labels"].tolist() == [3, 5]
    assert "mlm_labels" not in out


def test_mlm_with_a_vocab_lacking_mask_is_a_data_error():
    vocab = Vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b"])
    with pytest.raises(DataError, match=r"\[MASK\]"):
        collator(targets=("mlm",), fields=[], vocab=vocab)


def test_mlm_statistics_through_the_collator():
    rng = np.random.default_rng(2)
    items = [bert_instance(rng, int(rng.integers(10, 60)), int(rng.integers(10, 60))) for _ in range(600)]
    out = collator()(items, list(range(600)), 0)
    src, labels, pos = out["src"].numpy(), out["mlm_labels"].numpy(), out["mlm_positions"].numpy()
    valid = labels != -100
    real = sum(len(it["src"]) for it in items)
    maskable = real - 3 * len(items)
    assert abs(valid.sum() / maskable - 0.15) < 0.01
    rows = np.nonzero(valid)[0]
    corrupted = src[rows, pos[valid]]
    assert abs((corrupted == MASK).mean() - 0.8) < 0.03
    assert abs((corrupted == labels[valid]).mean() - 0.1) < 0.03
    # The only special ids in the corrupted input are the original specials, padding and [MASK].
    for i, item in enumerate(items):
        n = len(item["src"])
        introduced = (src[i, :n] != item["src"]) & np.isin(src[i, :n], SPECIAL_IDS)
        assert (src[i, :n][introduced] == MASK).all()
        assert not (src[i, :n] != item["src"])[np.isin(item["src"], SPECIAL_IDS)].any()


def test_whole_word_masking_through_the_collator_uses_the_vocab_pieces():
    rng = np.random.default_rng(3)
    items = []
    for _ in range(150):
        toks = []
        for _ in range(int(rng.integers(15, 40))):
            toks.append(rng.choice(WORD_IDS))
            toks.extend(rng.choice(PIECE_IDS, int(rng.integers(0, 3))))
        items.append({"src": np.array([CLS] + toks + [SEP])})
    out = collator(targets=("mlm",), fields=[], masking=MaskingConfig(whole_word_masking=True))(
        items, list(range(150)), 0)
    labels, pos = out["mlm_labels"].numpy(), out["mlm_positions"].numpy()
    for i, item in enumerate(items):
        s = item["src"]
        chosen = np.zeros(len(s), dtype=bool)
        chosen[pos[i][labels[i] != -100]] = True
        starts = ~VOCAB.is_continuation[s]
        word = np.cumsum(starts)
        for w in np.unique(word[chosen]):
            assert chosen[word == w].all(), (i, s, chosen)


def same_rows(a, b, i, j, length):
    """Row i of batch a equals row j of batch b on the first ``length`` columns and on the
    valid prediction slots."""
    for key in ("src", "seg"):
        assert torch.equal(a[key][i, :length], b[key][j, :length]), key
    va, vb = a["mlm_labels"][i] != -100, b["mlm_labels"][j] != -100
    assert torch.equal(a["mlm_labels"][i][va], b["mlm_labels"][j][vb])
    assert torch.equal(a["mlm_positions"][i][va], b["mlm_positions"][j][vb])


@pytest.mark.parametrize("masking", [MaskingConfig(), MaskingConfig(whole_word_masking=True),
                                     MaskingConfig(span_masking=True)], ids=["token", "wwm", "span"])
def test_an_instance_gets_the_same_mask_in_any_batch_of_equal_length(masking):
    rng = np.random.default_rng(4)
    data = {i: bert_instance(rng, 20, 20) for i in (3, 5, 17, 99)}       # all 43 tokens -> 48
    c = collator(masking=masking)
    a = c([data[3], data[17]], [3, 17], epoch=1)
    b = c([data[17], data[99], data[5]], [17, 99, 5], epoch=1)
    same_rows(a, b, 1, 0, 48)
    assert torch.equal(a["src"][1], b["src"][0])
    # Another epoch masks differently (checked on a few instances).
    c2 = c([data[3], data[17]], [3, 17], epoch=2)
    assert not torch.equal(a["mlm_positions"], c2["mlm_positions"])
    # Another seed too.
    d = collator(masking=masking, seed=8)([data[3], data[17]], [3, 17], epoch=1)
    assert not torch.equal(a["mlm_positions"], d["mlm_positions"])


@pytest.mark.parametrize("masking", [MaskingConfig(), MaskingConfig(whole_word_masking=True)], ids=["token", "wwm"])
def test_an_instance_gets_the_same_mask_whatever_the_padded_length(masking):
    rng = np.random.default_rng(5)
    short = {i: bert_instance(rng, 5, 5) for i in range(100)}              # 13 tokens -> 16
    long = bert_instance(rng, 60, 60)                                       # 123 tokens -> 128
    c = collator(masking=masking)
    alone = c([short[i] for i in range(100)], list(range(100)), epoch=0)
    for i in range(0, 100, 7):
        with_long = c([long, short[i]], [1000, i], epoch=0)
        same_rows(alone, with_long, i, 1, 13)


def test_span_mask_of_an_instance_does_not_depend_on_the_padded_length():
    rng = np.random.default_rng(5)
    short = {i: bert_instance(rng, 6, 6) for i in range(200)}              # 15 tokens -> 16, cap 3
    long = bert_instance(rng, 60, 60)                                       # -> 128, cap 20
    c = collator(masking=MaskingConfig(span_masking=True))
    alone = c([short[i] for i in range(200)], list(range(200)), epoch=0)
    together = c([short[i] for i in range(200)] + [long], list(range(200)) + [1000], epoch=0)
    for i in range(200):
        same_rows(alone, together, i, i, 15)


def test_batch_order_does_not_matter():
    rng = np.random.default_rng(6)
    items = [bert_instance(rng, int(rng.integers(3, 30)), int(rng.integers(3, 30))) for _ in range(40)]
    idx = list(range(500, 540))
    c = collator()
    forward = c(items, idx, 3)
    perm = np.random.default_rng(0).permutation(40)
    shuffled = c([items[p] for p in perm], [idx[p] for p in perm], 3)
    for k in ("src", "seg", "mlm_positions", "mlm_labels", "sp_labels"):
        assert torch.equal(shuffled[k], forward[k][perm]), k
    assert torch.equal(shuffled["tokens"], forward["tokens"])


def test_a_target_declares_its_own_fields_and_collate_step():
    """A new target needs no collator edit: its declaration is checked and its step runs."""
    from torch import nn

    from uer.registry import TARGETS
    from uer.targets.batch_fields import BatchFields

    class LengthTarget(BatchFields, nn.Module):
        instance_fields = ("seg_a_len",)
        instance_fields_hint = "bert"

        @staticmethod
        def collate(state):
            state.out["length_labels"] = torch.from_numpy((state.seg > 0).sum(1))

    TARGETS.register("length_for_test")(LengthTarget)
    try:
        rng = np.random.default_rng(0)
        items = [bert_instance(rng, 3, 4), bert_instance(rng, 5, 1)]
        out = collator(("mlm", "length_for_test"))(items, [0, 1], epoch=0)
        assert out["length_labels"].tolist() == [10, 9] and "mlm_labels" in out
        with pytest.raises(ConfigError, match=r"target 'length_for_test' needs instances with a 'seg_a_len' "
                                              r"field.*\(bert\)"):
            collator(("length_for_test",), fields=["label"])
    finally:
        TARGETS._entries.pop("length_for_test")

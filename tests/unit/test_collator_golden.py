"""Golden batches: the collator's output, bit for bit, as computed by the collator before targets
declared their own fields (PretrainCollator with per-target string switches).  Any change to how
batches are built — field names, shapes, dtypes, masking RNG, padding — shows up here."""

import hashlib

import numpy as np
import pytest
import torch

from uer.config import MaskingConfig
from uer.data.collator import PretrainCollator
from uer.data.vocab import Vocab

# The same vocabulary and instances as test_collator.py (copied so this file stands alone).
WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "far", "a", "big", "red", "hat"] + [f"w{i}" for i in range(30)]
VOCAB = Vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["##s", "##ed", "##ing", "##ly", "##er"])
WORD_IDS = np.array([VOCAB.token_to_id(w) for w in WORDS])


def bert_instance(rng, a_len, b_len):
    a, b = rng.choice(WORD_IDS, a_len), rng.choice(WORD_IDS, b_len)
    src = np.concatenate([[VOCAB.cls_id], a, [VOCAB.sep_id], b, [VOCAB.sep_id]]).astype(np.int64)
    return {"src": src, "seg_a_len": a_len + 2, "label": int(rng.integers(0, 2))}


def collator(targets, masking=None, fields=("seg_a_len", "label"), **kw):
    return PretrainCollator(VOCAB, list(targets), masking or MaskingConfig(), 7, list(fields), seq_length=128, **kw)

# Every tensor: (shape, first 16 hex digits of sha256 of its int64 bytes).
GOLDEN = {
    'mlm_sp': {
        'mlm_labels': ((4, 20), 'dfa231885d5c6afb'),
        'mlm_positions': ((4, 20), '70d587de2842dd57'),
        'seg': ((4, 24), '8a35af05dc59a79e'),
        'sp_labels': ((4,), '01c84f606ffe38ee'),
        'src': ((4, 24), '5e7d7ae5a46aa993'),
        'tokens': ((), '6e3989bfdab96750'),
    },
    'electra_mlm_rtd': {
        'mlm_labels': ((4, 20), 'dfa231885d5c6afb'),
        'mlm_positions': ((4, 20), '70d587de2842dd57'),
        'seg': ((4, 24), '8a35af05dc59a79e'),
        'src': ((4, 24), '5e7d7ae5a46aa993'),
        'tokens': ((), '6e3989bfdab96750'),
    },
    'cls': {
        'cls_labels': ((4,), '01c84f606ffe38ee'),
        'seg': ((4, 24), '8a35af05dc59a79e'),
        'src': ((4, 24), '5f7ff872b626871e'),
        'tokens': ((), '6e3989bfdab96750'),
    },
    'mlm_wwm': {
        'mlm_labels': ((4, 39), '15b773e0c9ed9fbe'),
        'mlm_positions': ((4, 39), 'a8a6134207713a79'),
        'seg': ((4, 24), '8a35af05dc59a79e'),
        'src': ((4, 24), '147bb27873ba487b'),
        'tokens': ((), '6e3989bfdab96750'),
    },
    'mlm_span': {
        'mlm_labels': ((4, 40), '2ab0ce9dbb6dfcde'),
        'mlm_positions': ((4, 40), '528ce75667ef6ee9'),
        'seg': ((4, 20), '725acbb55c8f818b'),
        'src': ((4, 20), '449b293679620b5f'),
        'tokens': ((), '6e3989bfdab96750'),
    },
    'mlm_random': {
        'mlm_labels': ((4, 20), 'dfa231885d5c6afb'),
        'mlm_positions': ((4, 20), '70d587de2842dd57'),
        'seg': ((4, 24), '8a35af05dc59a79e'),
        'src': ((4, 24), 'c8d1c5c1dc840621'),
        'tokens': ((), '6e3989bfdab96750'),
    },
    'lm': {
        'lm_labels': ((3, 16), 'cf0f70563ee9b01d'),
        'seg': ((3, 16), '210fe99ebec1ecad'),
        'src': ((3, 16), 'd4aa675c9213da43'),
        'tokens': ((), '3c88bf13b58cba9c'),
    },
}


def _cases():
    rng = np.random.default_rng(11)
    bert = [bert_instance(rng, a, b) for a, b in ((3, 4), (5, 1), (9, 8), (2, 2))]
    rng = np.random.default_rng(5)
    lm = [{"src": rng.choice(WORD_IDS, n + 1)} for n in (9, 14, 5)]
    return {
        "mlm_sp": (collator(("mlm", "sp")), bert),
        "electra_mlm_rtd": (collator(("mlm", "rtd"), fields=["seg_a_len"]), bert),
        "cls": (collator(("cls",)), bert),
        "mlm_wwm": (collator(("mlm",), MaskingConfig(whole_word_masking=True, mask_prob=0.3)), bert),
        "mlm_span": (collator(("mlm",), MaskingConfig(span_masking=True), max_length=16), bert),
        "mlm_random": (collator(("mlm", "rtd"), MaskingConfig(replace_mask=0.0, replace_random=1.0), fields=[]),
                       bert),
        "lm": (collator(("lm",), fields=[]), lm),
    }


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_batch_is_bit_identical_to_the_reference(name):
    col, items = _cases()[name]
    out = col(items, [3, 17, 42, 5][:len(items)], epoch=2)
    # seg_lengths: seg's real-token counts on the host (uer.layers.host_lengths), not a tensor.
    lengths = out.pop("seg_lengths")
    assert lengths.lengths == tuple((out["seg"] > 0).sum(dim=1).tolist()) and lengths.width == out["seg"].size(1)
    assert set(out) == set(GOLDEN[name])
    for key, (shape, digest) in GOLDEN[name].items():
        tensor = out[key]
        assert tensor.dtype == torch.int64, key
        assert tuple(tensor.shape) == shape, key
        assert hashlib.sha256(tensor.numpy().tobytes()).hexdigest()[:16] == digest, key

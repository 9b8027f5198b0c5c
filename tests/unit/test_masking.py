"""Counter-based randomness and masked-LM corruption: statistics over large batches, invariants
(specials and padding untouched, labels = original ids, sorted positions), whole-word and span
selection, and per-instance determinism whatever the batch."""

import math

import numpy as np
import pytest

from uer.config import MaskingConfig
from uer.data.masking import mask_batch, word_starts
from uer.data.random import uniform
from uer.data.vocab import Vocab

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [f"w{i}" for i in range(40)]
PIECES = [f"##p{i}" for i in range(15)]
VOCAB = Vocab(SPECIALS + WORDS + PIECES)
PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
WORD_IDS = np.arange(5, 5 + len(WORDS))
PIECE_IDS = np.arange(5 + len(WORDS), len(VOCAB))
RANDOM_IDS = np.arange(5, len(VOCAB))          # every non-special id
SPECIAL_IDS = np.array(VOCAB.special_ids)
GEO_MEAN_0_2_10 = sum(k * 0.2 * 0.8 ** (k - 1) for k in range(1, 11)) / sum(0.2 * 0.8 ** (k - 1) for k in range(1, 11))


def make_batch(batch, length, seed=0, continuation_prob=0.35, min_len=None, two_segments=True):
    """Rows [CLS] a.. [SEP] (b.. [SEP]) [PAD]..; words are a start id followed by ## pieces."""
    rng = np.random.default_rng(seed)
    min_len = min_len or max(4, length // 4)
    real = rng.integers(min_len, length + 1, batch)
    src = np.where(rng.random((batch, length)) < continuation_prob,
                   rng.choice(PIECE_IDS, (batch, length)), rng.choice(WORD_IDS, (batch, length)))
    src[:, 1] = rng.choice(WORD_IDS, batch)             # the first real token starts a word
    cols = np.arange(length)[None, :]
    src[:, 0] = CLS
    src[cols == (real - 1)[:, None]] = SEP
    if two_segments:
        mid = real // 2
        src[(cols == mid[:, None]) & (mid[:, None] > 1)] = SEP
    src[cols >= real[:, None]] = PAD
    maskable = ~np.isin(src, SPECIAL_IDS)
    return src, maskable


def run(src, maskable, cfg=None, indices=None, epoch=0, seed=1, max_predictions=None, whole=True):
    cfg = cfg or MaskingConfig()
    indices = np.arange(len(src)) if indices is None else np.asarray(indices)
    if max_predictions is None:
        max_predictions = max(1, math.ceil(src.shape[1] * cfg.mask_prob))
    continuation = VOCAB.is_continuation[src] if whole else None
    return mask_batch(src, indices, epoch, seed, maskable=maskable, continuation=continuation, cfg=cfg,
                      max_predictions=max_predictions, mask_id=MASK, random_ids=RANDOM_IDS)


def selected_mask(out, shape):
    """(B, L) bool of predicted positions, from positions/labels."""
    chosen = np.zeros(shape, dtype=bool)
    valid = out.labels != -100
    rows = np.nonzero(valid)[0]
    chosen[rows, out.positions[valid]] = True
    return chosen


def word_ids(maskable, continuation):
    """Global word id per token (-1 where not maskable), by the ## definition: a continuation piece
    directly after a maskable token belongs to that token's word."""
    starts = word_starts(maskable, continuation)
    ids = np.cumsum(starts.ravel()) - 1
    return np.where(maskable.ravel(), ids, -1).reshape(maskable.shape)


def runs_of(row_positions):
    """Lengths of maximal runs of consecutive positions."""
    if len(row_positions) == 0:
        return []
    breaks = np.nonzero(np.diff(row_positions) != 1)[0]
    ends = np.concatenate([breaks, [len(row_positions) - 1]])
    return list(np.diff(np.concatenate([[-1], ends])))


# --------------------------------------------------------------------------- random.uniform

def test_uniform_shape_range_and_dtype():
    u = uniform(7, 0, 1, np.arange(50), 33)
    assert u.shape == (50, 33) and u.dtype == np.float64
    assert u.min() >= 0.0 and u.max() < 1.0
    assert uniform(7, 0, 1, np.arange(0), 5).shape == (0, 5)
    assert uniform(7, 0, 1, np.arange(3), 0).shape == (3, 0)


def test_uniform_is_deterministic_and_rows_depend_only_on_the_index():
    a = uniform(42, 3, 1, np.array([3, 17]), 24)
    b = uniform(42, 3, 1, np.array([17, 99, 5]), 24)
    assert np.array_equal(a, uniform(42, 3, 1, np.array([3, 17]), 24))
    assert np.array_equal(a[1], b[0])
    # Column j does not depend on the padded length: a row is a prefix of a longer one.
    assert np.array_equal(uniform(42, 3, 1, np.array([17]), 64)[0, :24], a[1])
    # A list works as well as an array; huge and negative seeds are folded into 64 bits.
    assert np.array_equal(uniform(42, 3, 1, [3, 17], 24), a)
    assert np.isfinite(uniform(-1, 0, 1, [0], 4)).all() and np.isfinite(uniform(2 ** 70, 0, 1, [0], 4)).all()


@pytest.mark.parametrize("change", ["seed", "epoch", "stream", "index"])
def test_uniform_differs_when_any_key_changes(change):
    key = dict(seed=1, epoch=2, stream=3)
    idx = np.arange(20)
    base = uniform(key["seed"], key["epoch"], key["stream"], idx, 32)
    if change == "index":
        other = uniform(key["seed"], key["epoch"], key["stream"], idx + 1000, 32)
    else:
        key[change] += 1
        other = uniform(key["seed"], key["epoch"], key["stream"], idx, 32)
    # Independent streams: essentially no coincidences and no correlation.
    assert (base == other).mean() < 1e-3
    assert abs(np.corrcoef(base.ravel(), other.ravel())[0, 1]) < 0.05


def test_uniform_is_uniform_and_uncorrelated():
    u = uniform(123, 0, 1, np.arange(4000), 256)         # ~1M values
    assert abs(u.mean() - 0.5) < 0.002
    assert abs(u.var() - 1 / 12) < 0.001
    counts = np.histogram(u, bins=50, range=(0, 1))[0]
    expected = u.size / 50
    assert np.abs(counts - expected).max() < 0.03 * expected       # per-bucket within 3 %
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 100                                                # 49 dof: mean 49, sd ~10
    # Neighbouring positions and neighbouring instances are not correlated.
    assert abs(np.corrcoef(u[:, :-1].ravel(), u[:, 1:].ravel())[0, 1]) < 0.01
    assert abs(np.corrcoef(u[:-1].ravel(), u[1:].ravel())[0, 1]) < 0.01
    # Consecutive indices with the same position (the masking pattern of adjacent instances).
    assert abs(np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]) < 0.06


# --------------------------------------------------------------------------- token masking

@pytest.fixture(scope="module")
def token_batch():
    src, maskable = make_batch(2000, 128, seed=0)
    out = run(src, maskable, whole=False)
    return src, maskable, out


def test_token_masking_selects_round_n_p_per_row(token_batch):
    src, maskable, out = token_batch
    cfg = MaskingConfig()
    p_max = math.ceil(128 * cfg.mask_prob)
    n = maskable.sum(1)
    k = np.clip(np.rint(n * cfg.mask_prob), 1, p_max)
    assert out.positions.shape == out.labels.shape == (2000, p_max)
    assert np.array_equal((out.labels != -100).sum(1), k)
    frac = k.sum() / n.sum()
    assert abs(frac - cfg.mask_prob) < 0.01


def test_token_masking_invariants(token_batch):
    src, maskable, out = token_batch
    chosen = selected_mask(out, src.shape)
    valid = out.labels != -100
    # Only maskable positions are predicted; specials and padding never change.
    assert not (chosen & ~maskable).any()
    assert np.array_equal(out.src[~maskable], src[~maskable])
    # Unselected tokens are untouched.
    assert np.array_equal(out.src[~chosen], src[~chosen])
    # Labels are the ORIGINAL tokens at the positions; unused slots are (-100, 0).
    rows = np.nonzero(valid)[0]
    assert np.array_equal(out.labels[valid], src[rows, out.positions[valid]])
    assert (out.positions[~valid] == 0).all() and (out.labels[~valid] == -100).all()
    # Valid slots come first, positions strictly increasing.
    assert (np.diff(valid.astype(int), axis=1) <= 0).all()
    increasing = np.diff(out.positions, axis=1) > 0
    assert increasing[valid[:, 1:]].all()
    assert out.positions.dtype == np.int64 and out.labels.dtype == np.int64
    # The input is not modified in place.
    assert np.array_equal(src, make_batch(2000, 128, seed=0)[0])


def test_token_masking_80_10_10(token_batch):
    src, maskable, out = token_batch
    chosen = selected_mask(out, src.shape)
    orig, new = src[chosen], out.src[chosen]
    n = chosen.sum()
    masked = (new == MASK).mean()
    kept = (new == orig).mean()
    random = ((new != MASK) & (new != orig)).mean()
    # A random draw equals the original with probability 1/|random_ids|.
    assert abs(masked - 0.8) < 0.015, masked
    assert abs(kept - (0.1 + 0.1 / len(RANDOM_IDS))) < 0.015, kept
    assert abs(random - 0.1 * (1 - 1 / len(RANDOM_IDS))) < 0.015, random
    assert n > 20000
    replaced = new[(new != MASK) & (new != orig)]
    assert not np.isin(replaced, SPECIAL_IDS).any()
    assert np.isin(replaced, RANDOM_IDS).all()
    # Random replacements cover the whole non-special vocabulary roughly evenly.
    counts = np.bincount(replaced, minlength=len(VOCAB))[RANDOM_IDS]
    assert counts.min() > 0.4 * counts.mean() and counts.max() < 1.6 * counts.mean()


def test_no_special_token_ever_appears_where_it_was_not(token_batch):
    src, maskable, out = token_batch
    introduced = (out.src != src) & np.isin(out.src, SPECIAL_IDS)
    assert ((out.src[introduced]) == MASK).all()


@pytest.mark.parametrize("replace_mask,replace_random", [(0.85, 0.0), (1.0, 0.0), (0.0, 1.0), (0.5, 0.5)])
def test_replacement_ratios_are_configurable(replace_mask, replace_random):
    src, maskable = make_batch(1000, 64, seed=3)
    cfg = MaskingConfig(replace_mask=replace_mask, replace_random=replace_random)
    out = run(src, maskable, cfg, whole=False)
    chosen = selected_mask(out, src.shape)
    orig, new = src[chosen], out.src[chosen]
    masked = (new == MASK).mean()
    random = ((new != MASK) & (new != orig)).mean()
    kept = (new == orig).mean()
    assert abs(masked - replace_mask) < 0.02
    if replace_random == 0.0:
        assert random == 0.0
        assert abs(kept - (1 - replace_mask)) < 0.02
    else:
        assert abs(random - replace_random * (1 - 1 / len(RANDOM_IDS))) < 0.02
    if replace_mask == 1.0:
        assert (new == MASK).all()


@pytest.mark.parametrize("mask_prob", [0.05, 0.15, 0.3])
def test_mask_prob_is_respected(mask_prob):
    src, maskable = make_batch(500, 96, seed=4)
    cfg = MaskingConfig(mask_prob=mask_prob)
    p_max = math.ceil(96 * mask_prob)
    out = run(src, maskable, cfg, whole=False)
    k = np.clip(np.rint(maskable.sum(1) * mask_prob), 1, p_max)
    assert np.array_equal((out.labels != -100).sum(1), k)


def test_rows_with_few_or_no_maskable_tokens():
    src = np.array([[CLS, 10, SEP, PAD, PAD, PAD],      # one maskable token: still predicted
                    [CLS, SEP, PAD, PAD, PAD, PAD],     # nothing maskable: nothing predicted
                    [PAD, PAD, PAD, PAD, PAD, PAD],     # all padding
                    [CLS, 10, 11, 12, 13, SEP]])
    maskable = ~np.isin(src, SPECIAL_IDS)
    out = run(src, maskable, MaskingConfig(), max_predictions=3, whole=False)
    assert list((out.labels != -100).sum(1)) == [1, 0, 0, 1]
    assert out.positions[0, 0] == 1 and out.labels[0, 0] == 10
    assert (out.labels[1:3] == -100).all() and (out.positions[1:3] == 0).all()
    assert np.array_equal(out.src[1:3], src[1:3])


def test_max_predictions_caps_every_row():
    src, maskable = make_batch(300, 128, seed=5, min_len=120)
    out = run(src, maskable, MaskingConfig(mask_prob=0.5), max_predictions=7, whole=False)
    assert out.positions.shape == (300, 7)
    assert ((out.labels != -100).sum(1) == 7).all()
    chosen_by_corruption = out.src != src
    assert (chosen_by_corruption.sum(1) <= 7).all()


# --------------------------------------------------------------------------- whole words

@pytest.fixture(scope="module")
def wwm_batch():
    src, maskable = make_batch(2000, 128, seed=6, continuation_prob=0.45)
    cfg = MaskingConfig(whole_word_masking=True)
    p_max = math.ceil(128 * cfg.mask_prob)
    out = run(src, maskable, cfg, max_predictions=p_max)
    return src, maskable, out, cfg, p_max


def test_whole_word_masking_selects_whole_words(wwm_batch):
    src, maskable, out, cfg, p_max = wwm_batch
    chosen = selected_mask(out, src.shape)
    wid = word_ids(maskable, VOCAB.is_continuation[src])
    flat = wid.ravel()
    valid = flat >= 0
    size = np.bincount(flat[valid])
    picked = np.bincount(flat[valid], weights=chosen.ravel()[valid], minlength=len(size))
    assert ((picked == 0) | (picked == size)).all()
    assert not (chosen & ~maskable).any()
    # The batch really has multi-token words, and some of them are selected.
    multi = size > 1
    assert multi.sum() > 10000 and (picked[multi] > 0).sum() > 1000


def test_whole_word_budget_and_fallback(wwm_batch):
    src, maskable, out, cfg, p_max = wwm_batch
    chosen = selected_mask(out, src.shape)
    n = maskable.sum(1)
    k = np.clip(np.rint(n * cfg.mask_prob), 1, p_max)
    total = chosen.sum(1)
    assert (total >= 1).all()
    over = total > k
    # Only the documented fallback may exceed the budget: exactly one word, longer than k.
    wid = word_ids(maskable, VOCAB.is_continuation[src])
    for r in np.nonzero(over)[0]:
        words = np.unique(wid[r][chosen[r]])
        assert len(words) == 1, (r, words)
        assert total[r] > k[r]
    assert (total <= p_max).all()
    frac = total.sum() / n.sum()
    assert 0.10 < frac < 0.16, frac


def test_whole_word_fallback_predicts_one_long_word():
    # 3 maskable tokens -> budget rint(0.45) clipped to 1, but the only word has 3 tokens.
    src = np.array([[CLS, 5, PIECE_IDS[0], PIECE_IDS[1], SEP, PAD, PAD, PAD]])
    maskable = ~np.isin(src, SPECIAL_IDS)
    out = run(src, maskable, MaskingConfig(whole_word_masking=True), max_predictions=4)
    assert list(out.positions[0, :3]) == [1, 2, 3] and list(out.labels[0]) == [5, PIECE_IDS[0], PIECE_IDS[1], -100]


def test_whole_word_without_continuation_is_token_masking():
    src, maskable = make_batch(200, 64, seed=7)
    cfg = MaskingConfig(whole_word_masking=True)
    a = run(src, maskable, cfg, whole=False)
    b = run(src, maskable, MaskingConfig(), whole=False)
    assert np.array_equal(a.src, b.src) and np.array_equal(a.positions, b.positions)


def test_a_piece_after_a_special_starts_its_own_word():
    src = np.array([[CLS, PIECE_IDS[0], PIECE_IDS[1], SEP, 5, PIECE_IDS[2]]])
    maskable = ~np.isin(src, SPECIAL_IDS)
    starts = word_starts(maskable, VOCAB.is_continuation[src])
    assert list(starts[0]) == [False, True, False, False, True, False]


# --------------------------------------------------------------------------- spans

def span_cfg(**kw):
    return MaskingConfig(span_masking=True, **kw)


def assert_whole_words(chosen, maskable, src):
    wid = word_ids(maskable, VOCAB.is_continuation[src])
    flat = wid.ravel()
    valid = flat >= 0
    size = np.bincount(flat[valid])
    picked = np.bincount(flat[valid], weights=chosen.ravel()[valid], minlength=len(size))
    broken = (picked != 0) & (picked != size)
    assert not broken.any(), f"{broken.sum()} words partly selected"


def test_span_masking_selects_contiguous_whole_words_and_about_mask_prob():
    src, maskable = make_batch(1000, 128, seed=8, continuation_prob=0.3, min_len=100)
    out = run(src, maskable, span_cfg(), max_predictions=128)     # no cap: the spans themselves
    chosen = selected_mask(out, src.shape)
    assert not (chosen & ~maskable).any()
    assert_whole_words(chosen, maskable, src)
    # Corruption happens exactly at the predicted positions (or keeps the token).
    assert not ((out.src != src) & ~chosen).any()
    frac = chosen.sum() / maskable.sum()
    assert 0.11 < frac < 0.20, frac
    # Runs are much longer than with token masking (mean ~ 1.2 at 15 %).
    runs = [r for row in range(300) for r in runs_of(np.nonzero(chosen[row])[0])]
    assert np.mean(runs) > 2.5


def test_span_lengths_follow_the_truncated_geometric_distribution():
    # Sparse spans (mask_prob 3 %) in long rows of one-token words: runs are almost always single
    # spans, so their mean length estimates the span-length distribution.
    length = 1024
    src = np.full((400, length), WORD_IDS[0])
    maskable = np.ones_like(src, dtype=bool)
    out = run(src, maskable, span_cfg(mask_prob=0.03), max_predictions=length)
    chosen = selected_mask(out, src.shape)
    runs = np.array([r for row in range(len(src)) for r in runs_of(np.nonzero(chosen[row])[0])])
    assert len(runs) > 1000
    # Truncated geometric: P(10) = 0.2*0.8^9/(1-0.8^10) ~ 3 % (clipping would give ~13 %).
    assert (runs >= 10).mean() < 0.07, (runs >= 10).mean()
    assert abs(runs.mean() - GEO_MEAN_0_2_10) < 0.3, (runs.mean(), GEO_MEAN_0_2_10)


def test_span_masking_never_exceeds_max_predictions_and_predicts_in_every_row():
    src, maskable = make_batch(1000, 128, seed=9, min_len=4)
    cfg = span_cfg()
    p_max = math.ceil(128 * cfg.mask_prob)
    out = run(src, maskable, cfg, max_predictions=p_max)
    count = (out.labels != -100).sum(1)
    assert out.positions.shape == (1000, p_max)
    assert (count <= p_max).all()
    assert (count[maskable.sum(1) > 0] >= 1).all()
    assert ((out.src != src).sum(1) <= p_max).all()
    # Even a one-word row gets its word.
    tiny = np.array([[CLS, 7, SEP, PAD]])
    out = run(tiny, ~np.isin(tiny, SPECIAL_IDS), cfg, max_predictions=1)
    assert out.positions[0, 0] == 1 and out.labels[0, 0] == 7


def test_span_masking_keeps_whole_words_under_the_collator_cap():
    src, maskable = make_batch(1000, 128, seed=10, continuation_prob=0.3, min_len=110)
    cfg = span_cfg()
    out = run(src, maskable, cfg, max_predictions=math.ceil(128 * cfg.mask_prob))
    assert_whole_words(selected_mask(out, src.shape), maskable, src)


# --------------------------------------------------------------------------- determinism

@pytest.mark.parametrize("cfg", [MaskingConfig(), MaskingConfig(whole_word_masking=True),
                                 MaskingConfig(span_masking=True)], ids=["token", "wwm", "span"])
def test_a_row_is_a_function_of_its_index_and_epoch_only(cfg):
    src, maskable = make_batch(120, 64, seed=11)
    indices = np.arange(1000, 1120)
    full = run(src, maskable, cfg, indices=indices, epoch=2, seed=5)
    again = run(src, maskable, cfg, indices=indices, epoch=2, seed=5)
    assert np.array_equal(full.src, again.src) and np.array_equal(full.positions, again.positions)
    # Any sub-batch in any order gives the same rows.
    perm = np.random.default_rng(0).permutation(120)[:37]
    part = run(src[perm], maskable[perm], cfg, indices=indices[perm], epoch=2, seed=5)
    for name in ("src", "positions", "labels"):
        assert np.array_equal(getattr(part, name), getattr(full, name)[perm]), name
    # A different epoch or seed gives different masks for most rows.
    other_epoch = run(src, maskable, cfg, indices=indices, epoch=3, seed=5)
    other_seed = run(src, maskable, cfg, indices=indices, epoch=2, seed=6)
    for other in (other_epoch, other_seed):
        differs = (other.positions != full.positions).any(1)
        assert differs.mean() > 0.9
    # Other instance contents do not matter: change every other row entirely.
    mixed_src, mixed_maskable = make_batch(120, 64, seed=99)
    mixed_src[::2], mixed_maskable[::2] = src[::2], maskable[::2]
    mixed = run(mixed_src, mixed_maskable, cfg, indices=indices, epoch=2, seed=5)
    assert np.array_equal(mixed.src[::2], full.src[::2])
    assert np.array_equal(mixed.positions[::2], full.positions[::2])


@pytest.mark.parametrize("cfg", [MaskingConfig(), MaskingConfig(whole_word_masking=True)], ids=["token", "wwm"])
def test_padding_length_does_not_change_a_rows_mask(cfg):
    # Row of index 17 in batch [3, 17] (padded to 32) and in batch [17, 99, 5] (padded to 64).
    src32, m32 = make_batch(2, 32, seed=12, min_len=28)
    src64 = np.full((3, 64), PAD)
    src64[0, :32] = src32[1]
    src64[1:, :] = make_batch(2, 64, seed=13, min_len=60)[0]
    m64 = ~np.isin(src64, SPECIAL_IDS)
    a = run(src32, m32, cfg, indices=[3, 17], max_predictions=20)
    b = run(src64, m64, cfg, indices=[17, 99, 5], max_predictions=20)
    assert np.array_equal(a.src[1], b.src[0, :32]) and (b.src[0, 32:] == PAD).all()
    assert np.array_equal(a.positions[1], b.positions[0]) and np.array_equal(a.labels[1], b.labels[0])

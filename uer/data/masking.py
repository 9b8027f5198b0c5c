"""Vectorised masked-LM corruption: token, whole-word and span selection, 80/10/10 replacement.

Everything works on whole (B, L) arrays; there is no per-example Python loop.  The number of
predicted positions per sequence is capped by ``max_predictions`` so the MLM head sees a static
(B, P) shape.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

from uer.config import MaskingConfig
from uer.data.random import uniform

STREAM_SELECT, STREAM_ACTION, STREAM_RANDOM_TOKEN, STREAM_SPAN_LENGTH = 1, 2, 3, 4


@dataclass
class MaskedBatch:
    src: np.ndarray        # (B, L) corrupted input ids
    positions: np.ndarray  # (B, P) positions to predict (0 in unused slots)
    labels: np.ndarray     # (B, P) original ids, -100 in unused slots


def word_starts(maskable: np.ndarray, continuation: np.ndarray) -> np.ndarray:
    """A maskable token starts a word unless it continues one (## / no ▁) right after another
    maskable token."""
    prev_maskable = np.zeros_like(maskable)
    prev_maskable[:, 1:] = maskable[:, :-1]
    return maskable & ~(continuation & prev_maskable)


def _word_ids(starts: np.ndarray, maskable: np.ndarray) -> np.ndarray:
    """Global word id per token (row * L + start position), -1 where not maskable."""
    batch, length = starts.shape
    pos = np.where(starts, np.arange(length)[None, :], 0)
    start_of = np.maximum.accumulate(pos, axis=1)
    ids = np.arange(batch)[:, None] * length + start_of
    return np.where(maskable, ids, -1)


def _select_tokens(u: np.ndarray, maskable: np.ndarray, k: np.ndarray) -> np.ndarray:
    order = np.argsort(np.where(maskable, u, 2.0), axis=1, kind="stable")
    chosen = np.zeros_like(maskable)
    take = np.arange(u.shape[1])[None, :] < k[:, None]
    np.put_along_axis(chosen, order, take, axis=1)
    return chosen & maskable


def _select_whole_words(u: np.ndarray, maskable: np.ndarray, starts: np.ndarray,
                        k: np.ndarray) -> np.ndarray:
    """Pick words in random order until the next word would exceed k tokens."""
    batch, length = u.shape
    wid = _word_ids(starts, maskable)
    start_pos = np.where(wid >= 0, wid % length, 0)
    word_u = np.take_along_axis(u, start_pos, axis=1)                 # each token gets its word's score
    key = np.floor(word_u * (1 << 30)).astype(np.int64) * length + np.arange(length)[None, :]
    key = np.where(maskable, key, np.iinfo(np.int64).max)
    order = np.argsort(key, axis=1, kind="stable")                   # words contiguous, random order
    chosen = np.zeros_like(maskable)
    np.put_along_axis(chosen, order, np.arange(length)[None, :] < k[:, None], axis=1)
    chosen &= maskable
    # Drop the word cut by the budget: keep only words whose every token was chosen.
    flat = wid.ravel()
    valid = flat >= 0
    total = np.bincount(flat[valid], minlength=batch * length)
    picked = np.bincount(flat[valid], weights=chosen.ravel()[valid], minlength=batch * length)
    complete = np.zeros(flat.shape, dtype=bool)
    complete[valid] = picked[flat[valid]] == total[flat[valid]]
    chosen &= complete.reshape(batch, length)
    # A row whose first word alone exceeds the budget still predicts that one word.
    empty = (chosen.sum(1) == 0) & (k > 0)
    if empty.any():
        first_word = np.take_along_axis(wid, order[:, :1], axis=1)
        chosen[empty] = (wid == first_word)[empty]
    return chosen


def _truncated_geometric_mean(p: float, max_len: int) -> float:
    lengths = np.arange(1, max_len + 1)
    probs = p * (1 - p) ** (lengths - 1)
    return float((lengths * probs).sum() / probs.sum())


def _select_spans(u: np.ndarray, u_len: np.ndarray, maskable: np.ndarray, starts: np.ndarray,
                  cfg: MaskingConfig) -> np.ndarray:
    """SpanBERT-style spans of whole words: each word starts a span with probability
    mask_prob / E[length], lengths ~ Geometric(span_geo_prob) clipped to span_max_length words."""
    batch, length = u.shape
    p_start = min(1.0, cfg.mask_prob / _truncated_geometric_mean(cfg.span_geo_prob, cfg.span_max_length))
    # Lengths from the geometric distribution truncated (renormalised) to 1..span_max_length, by
    # inverting its CDF: scaling u onto the mass of the allowed lengths never yields a longer span.
    p = cfg.span_geo_prob
    if p < 1:
        mass = 1.0 - (1.0 - p) ** cfg.span_max_length
        span_len = np.floor(np.log1p(-u_len * mass) / np.log1p(-p)).astype(np.int64) + 1
        span_len = np.clip(span_len, 1, cfg.span_max_length)
    else:
        span_len = np.ones_like(u_len, dtype=np.int64)
    word_index = np.cumsum(starts, axis=1) - 1                        # word number of each token
    is_start = starts & (u < p_start)
    # In word-index space: a span starting at word w covers words w .. w+len-1.
    reach = np.full((batch, length), -1, dtype=np.int64)
    rows, cols = np.nonzero(is_start)
    reach[rows, word_index[rows, cols]] = word_index[rows, cols] + span_len[rows, cols]
    covered_word = np.maximum.accumulate(reach, axis=1) > np.arange(length)[None, :]
    token_word = np.clip(word_index, 0, length - 1)
    return np.take_along_axis(covered_word, token_word, axis=1) & maskable


def _cap_whole_words(chosen: np.ndarray, u: np.ndarray, starts: np.ndarray, cap: int) -> np.ndarray:
    """Rows over ``cap`` keep a random subset of their chosen *words* (never part of a word)."""
    over = chosen.sum(1) > cap
    if over.any():
        trimmed = _select_whole_words(u[over], chosen[over], starts[over] & chosen[over],
                                      np.full(int(over.sum()), cap))
        # A single word longer than the cap is the one case that must be cut.
        chosen[over] = _select_tokens(u[over], trimmed, np.full(int(over.sum()), cap))
    return chosen


def mask_batch(src: np.ndarray, indices: np.ndarray, epoch: int, seed: int, *, maskable: np.ndarray,
               continuation: Optional[np.ndarray], cfg: MaskingConfig, max_predictions: int,
               mask_id: int, random_ids: np.ndarray) -> MaskedBatch:
    """Corrupt ``src`` (B, L).  ``maskable`` marks tokens that may be predicted (not special, not
    padding); ``continuation`` marks word-continuation tokens (needed for whole words and spans)."""
    batch, length = src.shape
    u = uniform(seed, epoch, STREAM_SELECT, indices, length)
    count = maskable.sum(1)
    k = np.minimum(np.maximum(np.rint(count * cfg.mask_prob), 1), max_predictions).astype(np.int64)
    k = np.where(count > 0, k, 0)
    starts = word_starts(maskable, continuation) if continuation is not None else maskable
    if cfg.span_masking:
        u_len = uniform(seed, epoch, STREAM_SPAN_LENGTH, indices, length)
        chosen = _select_spans(u, u_len, maskable, starts, cfg)
        # No span at all in a short row: fall back to one word; over the cap: keep a random subset.
        chosen |= (chosen.sum(1) == 0)[:, None] & _select_whole_words(u, maskable, starts, np.minimum(k, 1))
        chosen = _cap_whole_words(chosen, u, starts, max_predictions)
    elif cfg.whole_word_masking and continuation is not None:
        chosen = _cap_whole_words(_select_whole_words(u, maskable, starts, k), u, starts, max_predictions)
    else:
        chosen = _select_tokens(u, maskable, k)

    # Predicted positions in increasing order, padded to P.
    order = np.argsort(~chosen, axis=1, kind="stable")[:, :max_predictions]
    if order.shape[1] < max_predictions:    # a batch shorter than the slot count
        order = np.pad(order, ((0, 0), (0, max_predictions - order.shape[1])))
    valid = np.arange(max_predictions)[None, :] < chosen.sum(1)[:, None]
    positions = np.where(valid, order, 0)
    labels = np.where(valid, np.take_along_axis(src, positions, axis=1), -100)

    action = uniform(seed, epoch, STREAM_ACTION, indices, length)
    rand = uniform(seed, epoch, STREAM_RANDOM_TOKEN, indices, length)
    to_mask = chosen & (action < cfg.replace_mask)
    to_random = chosen & (action >= cfg.replace_mask) & (action < cfg.replace_mask + cfg.replace_random)
    corrupted = src.copy()
    corrupted[to_mask] = mask_id
    random_tokens = random_ids[np.minimum((rand * len(random_ids)).astype(np.int64), len(random_ids) - 1)]
    corrupted[to_random] = random_tokens[to_random]
    return MaskedBatch(corrupted, positions.astype(np.int64), labels.astype(np.int64))

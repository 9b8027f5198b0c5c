"""Checking a dataset directory when it is opened, before anything is trained or written: a
truncated, edited or corrupted dataset is one ``DataError`` naming the file and what is wrong,
never a traceback in the middle of an epoch and never a silently wrong epoch.

What is checked (the index is scanned in chunks, so memory stays flat; ``tokens.bin`` is checked by
size, not read):

* ``meta.json`` has every key the reader needs, with the right types (``token_dtype`` one of the
  writer's, per-shard counts that add up to the totals) and, for training (``check_preprocess_meta``),
  the sequence length and the tokenizer fingerprint;
* each shard's ``tokens.bin`` holds exactly ``tokens`` ids of ``token_dtype`` and its ``index.bin``
  exactly ``instances`` rows;
* index rows: the (offset, length) pairs of every stream are contiguous from 0 to the shard's
  token count in write order (the writer appends back to back, so any flipped byte breaks this),
  no instance is longer than the dataset's ``seq_length`` and the longest equals ``max_length``;
* integer fields: ``seg_a_len`` within its instance, ``label`` non-negative and below the
  processor's ``label_classes`` where it declares one (NSP/SOP: 2).
"""

import os
import re
from typing import List

import numpy as np

from uer.errors import DataError

TOKEN_DTYPES = ("uint16", "uint32")
SHARD_NAME = re.compile(r"^shard_\d{5}$")
ROWS_PER_CHUNK = 1 << 18
# Streams holding one flag per src token: word_cont (word boundaries), doc_start (llm_pretrain's
# document starts), loss_mask (llm_sft's trained tokens).
FLAGS_PER_SRC_TOKEN = ("word_cont", "doc_start", "loss_mask")


def _fail(where: str, what: str) -> DataError:
    return DataError(f"{where}: {what}; the dataset is damaged — rebuild it with preprocess.py")


def check_meta(meta: dict, meta_path: str) -> None:
    def need(key, kind, test=lambda v: True, hint=""):
        value = meta.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or not test(value):
            shown = "missing" if key not in meta else repr(value)[:60]
            raise _fail(meta_path, f"key '{key}' is {shown}{hint}")
        return value

    streams = need("streams", list, lambda v: v and all(isinstance(s, str) for s in v))
    need("fields", list, lambda v: all(isinstance(f, str) for f in v))
    need("token_dtype", str, lambda v: v in TOKEN_DTYPES, f" (expected one of {', '.join(TOKEN_DTYPES)})")
    shards = need("shards", list, lambda v: len(v) > 0)
    for i, shard in enumerate(shards):
        if not (isinstance(shard, dict) and isinstance(shard.get("name"), str) and SHARD_NAME.match(shard["name"])
                and all(isinstance(shard.get(k), int) and not isinstance(shard.get(k), bool) and shard[k] >= 0
                        for k in ("instances", "tokens"))):
            raise _fail(meta_path, f"shards[{i}] is {str(shard)[:80]} (expected name shard_NNNNN and "
                                   "non-negative instance and token counts)")
    instances = need("instances", int, lambda v: v > 0)
    tokens = need("tokens", int, lambda v: v >= 0)
    if sum(s["instances"] for s in shards) != instances or sum(s["tokens"] for s in shards) != tokens:
        raise _fail(meta_path, f"the shards hold {sum(s['instances'] for s in shards)} instances and "
                               f"{sum(s['tokens'] for s in shards)} tokens but the totals say {instances} and {tokens}")
    max_length = need("max_length", dict)
    for stream in streams:
        if not isinstance(max_length.get(stream), int):
            raise _fail(meta_path, f"max_length has no entry for stream '{stream}'")


def check_preprocess_meta(meta: dict, meta_path: str) -> None:
    """What preprocess.py records and training relies on: the sequence length and the tokenizer
    fingerprint (checked against the tokenizer given to pretrain.py)."""
    if not isinstance(meta.get("seq_length"), int) or isinstance(meta.get("seq_length"), bool) \
            or meta["seq_length"] <= 0:
        raise _fail(meta_path, f"key 'seq_length' is {meta.get('seq_length', 'missing')!r}")
    tokenizer = meta.get("tokenizer")
    if not isinstance(tokenizer, dict) or not tokenizer.get("fingerprint"):
        raise _fail(meta_path, "the tokenizer fingerprint is missing (key 'tokenizer.fingerprint'), so the "
                               "tokenizer it was built with cannot be checked")


def check_shard_files(path: str, meta: dict, shard: dict, columns: int) -> None:
    name = os.path.join(path, shard["name"])
    itemsize = np.dtype(meta["token_dtype"]).itemsize
    for suffix, expected, unit in ((".tokens.bin", shard["tokens"] * itemsize, f"{shard['tokens']} {meta['token_dtype']} ids"),
                                   (".index.bin", shard["instances"] * columns * 8, f"{shard['instances']} index rows")):
        file = name + suffix
        if not os.path.isfile(file):
            raise _fail(file, "the file is missing")
        size = os.path.getsize(file)
        if size != expected:
            raise _fail(file, f"{size} bytes, but meta.json says it holds {unit} ({expected} bytes)")


def check_index(path: str, meta: dict, shard: dict, index: np.ndarray, label_classes: int) -> List[int]:
    """Scan one shard's index rows; returns the longest instance of each stream."""
    file = os.path.join(path, shard["name"] + ".index.bin")
    streams, fields = meta["streams"], meta["fields"]
    n_streams = len(streams)
    expected_offset, longest = 0, [0] * n_streams
    for start in range(0, len(index), ROWS_PER_CHUNK):
        rows = np.asarray(index[start:start + ROWS_PER_CHUNK])
        pairs = rows[:, :2 * n_streams].reshape(-1, 2)         # (offset, length) in write order
        offsets, lengths = pairs[:, 0], pairs[:, 1]
        if (lengths < 0).any():
            bad = int(np.argmax(lengths < 0)) // n_streams + start
            raise _fail(file, f"instance {bad} has a negative length")
        ends = np.cumsum(lengths) + expected_offset
        starts = ends - lengths
        if not np.array_equal(offsets, starts):
            bad = int(np.argmax(offsets != starts)) // n_streams + start
            raise _fail(file, f"instance {bad} starts at token {int(offsets[np.argmax(offsets != starts)])}, "
                              f"expected {int(starts[np.argmax(offsets != starts)])} (offsets are not contiguous)")
        expected_offset = int(ends[-1]) if len(ends) else expected_offset
        for j in range(n_streams):
            longest[j] = max(longest[j], int(rows[:, 2 * j + 1].max(initial=0)))
        for flag_stream in FLAGS_PER_SRC_TOKEN:
            if flag_stream not in streams:
                continue
            flags = rows[:, 2 * streams.index(flag_stream) + 1]
            tokens = rows[:, 2 * streams.index("src") + 1]
            if (flags != tokens).any():
                bad = int(np.argmax(flags != tokens))
                raise _fail(file, f"instance {bad + start} has {int(flags[bad])} {flag_stream} flags for "
                                  f"{int(tokens[bad])} src tokens")
        for j, field in enumerate(fields):
            values = rows[:, 2 * n_streams + j]
            upper = rows[:, 1] if field == "seg_a_len" else \
                np.full(len(values), label_classes - 1) if field == "label" and label_classes else None
            bad = (values < 0) if upper is None else (values < 0) | (values > upper)
            if bad.any():
                row = int(np.argmax(bad))
                bound = f"0..{int(upper[row])}" if upper is not None else "a non-negative value"
                raise _fail(file, f"instance {row + start} has {field} {int(values[row])}, expected {bound}")
    if expected_offset != shard["tokens"]:
        raise _fail(file, f"the instances cover {expected_offset} tokens, but meta.json says {shard['tokens']}")
    return longest


def check_lengths(meta_path: str, meta: dict, longest: List[int], extra_tokens: int = 0) -> None:
    """``extra_tokens``: what the processor stores beyond seq_length (lm: the shifted target's one)."""
    for stream, length in zip(meta["streams"], longest):
        aligned_with_src = stream == "src" or stream in FLAGS_PER_SRC_TOKEN
        limit = meta.get("seq_length") if aligned_with_src else meta.get("tgt_seq_length") or meta.get("seq_length")
        if isinstance(limit, int) and length > limit + extra_tokens:
            raise _fail(meta_path, f"an instance of stream '{stream}' has {length} tokens, more than the "
                                   f"dataset's seq_length {limit}" + (f" + {extra_tokens}" if extra_tokens else ""))
        if length != meta["max_length"][stream]:
            raise _fail(meta_path, f"max_length of '{stream}' says {meta['max_length'][stream]}, but the longest "
                                   f"instance has {length} tokens")

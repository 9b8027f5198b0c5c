"""The indexed, memory-mapped dataset format written by preprocess.py and read by pretrain.py.

A dataset is a directory::

    meta.json                format version, processor, tokenizer fingerprint, seq lengths, counts
    shard_00000.tokens.bin   token ids of every instance of the shard, back to back (uint16/uint32)
    shard_00000.index.bin    int64 rows, one per instance: (offset, length) for each token stream,
                             then the instance's integer fields (e.g. segment-A length, NSP label)

Instances are read by global index through ``np.memmap``, so a rank touches only the pages of the
instances it is given and memory does not grow with the dataset.  The writer fills a temporary
sibling directory and renames it into place on success, so a failed run leaves nothing behind.
"""

import json
import os
import shutil
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from uer.errors import DataError
from uer.leftovers import remove_leftovers
from uer.utils import read_json_object

FORMAT_NAME = "uer-dataset"
FORMAT_VERSION = 1
META_FILE = "meta.json"


def token_dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)


class DatasetWriter:
    """Streams instances into shards.  Use as a context manager: an exception aborts and removes the
    partial output, a clean exit publishes the directory atomically."""

    def __init__(self, path: str, streams: Sequence[str], fields: Sequence[str], vocab_size: int,
                 meta: Optional[dict] = None, shard_max_tokens: int = 1 << 28,
                 stream_vocab_sizes: Optional[Dict[str, int]] = None):
        """``stream_vocab_sizes``: a stream whose ids come from another vocabulary (mt's tgt) and its
        size; the others are checked against ``vocab_size``."""
        self.path = os.path.abspath(path)
        self.streams = list(streams)
        self.fields = list(fields)
        self._limits = {name: (stream_vocab_sizes or {}).get(name) or vocab_size for name in self.streams}
        self.dtype = token_dtype_for(max(self._limits.values(), default=vocab_size))
        self.extra_meta = dict(meta or {})
        self.shard_max_tokens = shard_max_tokens
        parent = os.path.dirname(self.path)
        if parent and not os.path.isdir(parent):
            os.makedirs(parent, exist_ok=True)
        # A build killed earlier left its temporary directory (or, mid-swap, the old dataset) here.
        remove_leftovers(parent, os.path.basename(self.path) + ".", f"preprocess.py run into {self.path}")
        self.tmp_path = f"{self.path}.tmp-{os.getpid()}-{int(time.time() * 1000)}"
        os.makedirs(self.tmp_path)
        self.shards: List[dict] = []
        self._tokens_file = None
        self._index_file = None
        self._shard_tokens = 0
        self._shard_instances = 0
        self.instances = 0
        self.tokens = 0
        self.max_length: Dict[str, int] = {s: 0 for s in self.streams}

    # -- shards ---------------------------------------------------------------------------------
    def _open_shard(self):
        name = f"shard_{len(self.shards):05d}"
        self._tokens_file = open(os.path.join(self.tmp_path, name + ".tokens.bin"), "wb")
        self._index_file = open(os.path.join(self.tmp_path, name + ".index.bin"), "wb")
        self.shards.append({"name": name, "instances": 0, "tokens": 0})
        self._shard_tokens = 0
        self._shard_instances = 0

    def _close_shard(self):
        if self._tokens_file is None:
            return
        self._tokens_file.close()
        self._index_file.close()
        self.shards[-1].update(instances=self._shard_instances, tokens=self._shard_tokens)
        self._tokens_file = self._index_file = None

    def add(self, streams: Dict[str, Sequence[int]], fields: Sequence[int] = ()):
        """Append one instance: ``streams`` maps every stream name to its token ids, ``fields`` gives
        the integer fields in the order declared at construction."""
        if len(fields) != len(self.fields):
            raise ValueError(f"expected fields {self.fields}, got {list(fields)}")
        if self._tokens_file is None or self._shard_tokens >= self.shard_max_tokens:
            self._close_shard()
            self._open_shard()
        row = []
        for name in self.streams:
            ids = np.asarray(streams[name])
            if ids.dtype.kind not in "iu":      # integer arrays (the processors' int32) are checked as they are
                ids = ids.astype(np.int64)
            if ids.size and (ids.min() < 0 or ids.max() >= self._limits[name]):
                raise ValueError(f"token id out of range [0, {self._limits[name]}) in stream '{name}'")
            row.extend([self._shard_tokens, ids.size])
            self._tokens_file.write(ids.astype(self.dtype).tobytes())
            self._shard_tokens += ids.size
            self.tokens += ids.size
            self.max_length[name] = max(self.max_length[name], int(ids.size))
        row.extend(int(f) for f in fields)
        self._index_file.write(np.asarray(row, dtype=np.int64).tobytes())
        self._shard_instances += 1
        self.instances += 1

    def add_packed(self, tokens: np.ndarray, lengths: np.ndarray, fields: np.ndarray) -> None:
        """Append many instances of a one-stream dataset at once: ``tokens`` holds their ids back to back,
        ``lengths`` one length per instance, ``fields`` one row of integer fields per instance.  Writes the
        same bytes as :meth:`add` per instance (shard boundaries included), with one range check and one
        write per shard instead of per instance."""
        if len(self.streams) != 1:
            raise ValueError(f"add_packed writes one-stream datasets; this one has {self.streams}")
        name = self.streams[0]
        lengths = np.asarray(lengths, dtype=np.int64)
        n = len(lengths)
        fields = np.asarray(fields, dtype=np.int64).reshape(n, len(self.fields))
        tokens = np.asarray(tokens)
        if tokens.dtype.kind not in "iu":
            tokens = tokens.astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        if tokens.size != starts[-1]:
            raise ValueError(f"{tokens.size} tokens for lengths summing to {int(starts[-1])}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self._limits[name]):
            raise ValueError(f"token id out of range [0, {self._limits[name]}) in stream '{name}'")
        i = 0
        while i < n:
            if self._tokens_file is None or self._shard_tokens >= self.shard_max_tokens:
                self._close_shard()
                self._open_shard()
            # As add(): an instance joins this shard when the shard is not yet full at its start.
            offsets = starts[i:n] - starts[i] + self._shard_tokens
            k = i + max(1, int(np.searchsorted(offsets, self.shard_max_tokens, side="left")))
            rows = np.column_stack([offsets[:k - i], lengths[i:k], fields[i:k]]).astype(np.int64)
            self._index_file.write(rows.tobytes())
            self._tokens_file.write(tokens[starts[i]:starts[k]].astype(self.dtype).tobytes())
            count = int(starts[k] - starts[i])
            self._shard_tokens += count
            self.tokens += count
            self._shard_instances += k - i
            self.instances += k - i
            self.max_length[name] = max(self.max_length[name], int(lengths[i:k].max()))
            i = k

    # -- publish / abort --------------------------------------------------------------------------
    def close(self) -> dict:
        self._close_shard()
        if self.instances == 0:
            self.abort()
            raise DataError(f"no instances were produced for {self.path}: the corpus is empty or every "
                            "document is too short for the chosen processor and sequence length")
        meta = dict(self.extra_meta)
        meta.update(format=FORMAT_NAME, version=FORMAT_VERSION, token_dtype=self.dtype.name,
                    streams=self.streams, fields=self.fields, shards=self.shards,
                    instances=self.instances, tokens=self.tokens, max_length=self.max_length)
        with open(os.path.join(self.tmp_path, META_FILE), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2, ensure_ascii=False)
        if os.path.isdir(self.path):
            # Replace an older dataset only now that the new one is complete.
            old = self.path + f".old-{os.getpid()}"
            os.rename(self.path, old)
            os.rename(self.tmp_path, self.path)
            shutil.rmtree(old, ignore_errors=True)
        elif os.path.exists(self.path):
            self.abort()
            raise DataError(f"--dataset_path {self.path} exists and is not a dataset directory; "
                            "remove it or choose another path")
        else:
            os.rename(self.tmp_path, self.path)
        return meta

    def abort(self):
        for f in (self._tokens_file, self._index_file):
            if f is not None:
                f.close()
        self._tokens_file = self._index_file = None
        shutil.rmtree(self.tmp_path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def read_meta(path: str) -> dict:
    meta_path = os.path.join(path, META_FILE)
    if os.path.isfile(path):
        raise DataError(f"--dataset_path {path} is a file; uer datasets are directories written by "
                        "preprocess.py (UER-py's dataset.pt pickles are not read: re-run preprocess.py)")
    if not os.path.isdir(path):
        raise DataError(f"dataset directory {path} does not exist; build it with preprocess.py "
                        "--corpus_path ... --dataset_path " + path)
    if not os.path.isfile(meta_path):
        raise DataError(f"{path} has no {META_FILE}: it is not a uer dataset (UER-py's dataset.pt "
                        "pickles are not read; re-run preprocess.py to build one)")
    meta = read_json_object(meta_path, meta_path, DataError, fix="; rebuild the dataset")
    if meta.get("format") != FORMAT_NAME:
        raise DataError(f"{meta_path}: not a uer dataset (format={meta.get('format')!r})")
    if meta.get("version") != FORMAT_VERSION:
        raise DataError(f"{meta_path}: dataset format version {meta.get('version')} is not supported "
                        f"by this uer (expects {FORMAT_VERSION}); rebuild it with preprocess.py")
    return meta


def verify(path: str, meta: dict) -> None:
    """The open-time checks of ``uer.data.dataset_check``: meta.json's structure, every shard's file
    sizes and index rows (see that module)."""
    from uer.data import dataset_check
    meta_path = os.path.join(path, META_FILE)
    dataset_check.check_meta(meta, meta_path)
    columns = 2 * len(meta["streams"]) + len(meta["fields"])
    processor = _processor_class(meta.get("processor"))
    label_classes = getattr(processor, "label_classes", 0)
    longest = [0] * len(meta["streams"])
    for shard in meta["shards"]:
        dataset_check.check_shard_files(path, meta, shard, columns)
        name = os.path.join(path, shard["name"] + ".index.bin")
        index = np.memmap(name, dtype=np.int64, mode="r").reshape(-1, columns) if shard["instances"] \
            else np.zeros((0, columns), np.int64)
        found = dataset_check.check_index(path, meta, shard, index, label_classes)
        longest = [max(a, b) for a, b in zip(longest, found)]
        del index
    dataset_check.check_lengths(meta_path, meta, longest, getattr(processor, "extra_tokens", 0))


def _processor_class(name):
    """The processor that built the dataset (its ``label_classes``, ``extra_tokens``), or None."""
    from uer.data.processors import PROCESSORS
    return PROCESSORS.get(name) if isinstance(name, str) and name in PROCESSORS.names() else None


class IndexedDataset:
    """Random access to the instances of a dataset directory."""

    def __init__(self, path: str):
        self.path = path
        self.meta = read_meta(path)
        verify(path, self.meta)
        self.streams: List[str] = self.meta["streams"]
        self.fields: List[str] = self.meta["fields"]
        self.dtype = np.dtype(self.meta["token_dtype"])
        counts = [s["instances"] for s in self.meta["shards"]]
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._columns = 2 * len(self.streams) + len(self.fields)
        self._tokens = [None] * len(counts)
        self._index = [None] * len(counts)
        # Token data has no checksum; an id beyond the vocabulary (a flipped high byte, say) is the
        # damage that would otherwise surface as an embedding IndexError mid-run.
        tokenizer = self.meta.get("tokenizer")
        self._vocab_size = tokenizer.get("vocab_size") if isinstance(tokenizer, dict) else None
        tgt_tokenizer = self.meta.get("tgt_tokenizer")      # mt: the tgt stream has its own vocabulary
        self._stream_vocab_size = {name: self._vocab_size for name in self.streams}
        if isinstance(tgt_tokenizer, dict) and "tgt" in self.streams:
            self._stream_vocab_size["tgt"] = tgt_tokenizer.get("vocab_size")

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _shard(self, k: int):
        if self._tokens[k] is None:
            name = os.path.join(self.path, self.meta["shards"][k]["name"])
            try:
                tokens = np.memmap(name + ".tokens.bin", dtype=self.dtype, mode="r") \
                    if self.meta["shards"][k]["tokens"] else np.zeros(0, self.dtype)
                index = np.memmap(name + ".index.bin", dtype=np.int64, mode="r")
            except (FileNotFoundError, ValueError) as e:
                raise DataError(f"dataset {self.path} is incomplete ({e}); rebuild it with preprocess.py")
            if index.size != self.meta["shards"][k]["instances"] * self._columns:
                raise DataError(f"dataset {self.path}: {name}.index.bin has the wrong size; rebuild it")
            self._tokens[k], self._index[k] = tokens, index.reshape(-1, self._columns)
        return self._tokens[k], self._index[k]

    def __getitem__(self, i: int) -> Dict[str, object]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        k = int(np.searchsorted(self._starts, i, side="right") - 1)
        tokens, index = self._shard(k)
        row = index[i - self._starts[k]]
        item: Dict[str, object] = {}
        for j, name in enumerate(self.streams):
            offset, length = int(row[2 * j]), int(row[2 * j + 1])
            item[name] = np.asarray(tokens[offset:offset + length], dtype=np.int64)
            limit = self._stream_vocab_size[name]
            if limit and length and int(item[name].max()) >= limit:
                shard = os.path.join(self.path, self.meta["shards"][k]["name"] + ".tokens.bin")
                raise DataError(f"{shard}: instance {i} holds token id {int(item[name].max())}, beyond the "
                                f"vocabulary's {limit} ids (meta.json): the file is damaged; "
                                "rebuild the dataset with preprocess.py")
        for j, name in enumerate(self.fields):
            item[name] = int(row[2 * len(self.streams) + j])
        return item

    def __getstate__(self):
        # Memory maps are reopened lazily in each DataLoader worker rather than pickled.
        state = dict(self.__dict__)
        state["_tokens"] = [None] * len(self._tokens)
        state["_index"] = [None] * len(self._index)
        return state

"""The on-disk dataset format: round trip, atomic publish, clean aborts, dtype choice, and clear
errors for damaged datasets."""

import json
import os
import pickle

import numpy as np
import pytest

from uer.data.dataset import META_FILE, DatasetWriter, IndexedDataset, read_meta, token_dtype_for
from uer.errors import DataError


def leftovers(directory) -> list:
    return sorted(name for name in os.listdir(directory) if ".tmp-" in name or ".old-" in name)


def sample_instances(n=50, seed=0, vocab_size=1000):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        src = rng.integers(0, vocab_size, int(rng.integers(0, 20)))
        tgt = rng.integers(0, vocab_size, int(rng.integers(1, 5)))
        out.append(({"src": src, "tgt": tgt}, (int(rng.integers(0, len(src) + 1)), int(rng.integers(0, 2)))))
    return out


def write(path, instances, vocab_size=1000, **kw) -> dict:
    with DatasetWriter(str(path), streams=["src", "tgt"], fields=["seg_a_len", "label"],
                       vocab_size=vocab_size, meta={"processor": "test"}, **kw) as writer:
        for streams, fields in instances:
            writer.add(streams, fields)
    return read_meta(str(path))


@pytest.mark.parametrize("shard_max_tokens", [1 << 20, 37])
def test_round_trip_across_shards(tmp_path, shard_max_tokens):
    instances = sample_instances()
    meta = write(tmp_path / "ds", instances, shard_max_tokens=shard_max_tokens)
    assert meta["processor"] == "test" and meta["instances"] == 50
    assert meta["tokens"] == sum(len(s["src"]) + len(s["tgt"]) for s, _ in instances)
    assert (len(meta["shards"]) > 1) == (shard_max_tokens == 37)
    ds = IndexedDataset(str(tmp_path / "ds"))
    assert len(ds) == 50
    for i in (0, 17, 49, 3):
        streams, (seg_a_len, label) = instances[i]
        item = ds[i]
        assert np.array_equal(item["src"], streams["src"]) and np.array_equal(item["tgt"], streams["tgt"])
        assert item["src"].dtype == np.int64 and (item["seg_a_len"], item["label"]) == (seg_a_len, label)
    with pytest.raises(IndexError):
        ds[50]
    clone = pickle.loads(pickle.dumps(ds))   # DataLoader workers reopen the memory maps lazily
    assert np.array_equal(clone[17]["src"], ds[17]["src"])


def test_publish_is_atomic_and_replaces_an_old_dataset(tmp_path):
    path = tmp_path / "ds"
    write(path, sample_instances(5, seed=1))
    writer = DatasetWriter(str(path), streams=["src", "tgt"], fields=["seg_a_len", "label"], vocab_size=1000)
    for streams, fields in sample_instances(7, seed=2):
        writer.add(streams, fields)
    assert read_meta(str(path))["instances"] == 5   # the old dataset stays readable meanwhile
    assert len(leftovers(tmp_path)) == 1
    writer.close()
    assert read_meta(str(path))["instances"] == 7 and leftovers(tmp_path) == []


def test_exception_aborts_and_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with DatasetWriter(str(tmp_path / "ds"), streams=["src"], fields=[], vocab_size=10) as writer:
            writer.add({"src": [1, 2, 3]})
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_empty_dataset_is_an_error_and_leaves_nothing(tmp_path):
    with pytest.raises(DataError, match="no instances"):
        with DatasetWriter(str(tmp_path / "ds"), streams=["src"], fields=[], vocab_size=10):
            pass
    assert os.listdir(tmp_path) == []


def test_path_that_is_a_file_is_refused_and_kept(tmp_path):
    (tmp_path / "ds").write_text("precious")
    with pytest.raises(DataError, match="not a dataset directory"):
        with DatasetWriter(str(tmp_path / "ds"), streams=["src"], fields=[], vocab_size=10) as writer:
            writer.add({"src": [1]})
    assert (tmp_path / "ds").read_text() == "precious" and leftovers(tmp_path) == []


def test_bad_instances_are_rejected(tmp_path):
    with DatasetWriter(str(tmp_path / "ds"), streams=["src"], fields=["label"], vocab_size=10) as writer:
        with pytest.raises(ValueError, match="out of range"):
            writer.add({"src": [3, 10]}, [0])
        with pytest.raises(ValueError, match="expected fields"):
            writer.add({"src": [3]}, [])
        writer.add({"src": [9]}, [1])


@pytest.mark.parametrize("vocab_size, dtype", [(100, np.uint16), (65536, np.uint16),
                                               (65537, np.uint32), (250_000, np.uint32)])
def test_token_dtype_fits_the_vocabulary(tmp_path, vocab_size, dtype):
    assert token_dtype_for(vocab_size) == dtype
    top = vocab_size - 1
    with DatasetWriter(str(tmp_path / "ds"), streams=["src"], fields=[], vocab_size=vocab_size) as writer:
        writer.add({"src": [0, top]})
    meta = read_meta(str(tmp_path / "ds"))
    assert meta["token_dtype"] == np.dtype(dtype).name
    size = os.path.getsize(tmp_path / "ds" / "shard_00000.tokens.bin")
    assert size == 2 * np.dtype(dtype).itemsize
    assert list(IndexedDataset(str(tmp_path / "ds"))[0]["src"]) == [0, top]


def test_missing_and_corrupt_meta_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist.*preprocess.py"):
        read_meta(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no meta.json"):
        IndexedDataset(str(tmp_path / "empty"))
    path = tmp_path / "ds"
    write(path, sample_instances(3))
    meta_path = path / META_FILE
    good = json.loads(meta_path.read_text())
    meta_path.write_text('{"format": "uer-dataset",')
    with pytest.raises(DataError, match="not valid JSON"):
        read_meta(str(path))
    meta_path.write_text(json.dumps({**good, "format": "pickle"}))
    with pytest.raises(DataError, match="not a uer dataset"):
        read_meta(str(path))
    meta_path.write_text(json.dumps({**good, "version": 99}))
    with pytest.raises(DataError, match="version 99 is not supported"):
        read_meta(str(path))


def test_damaged_shards_are_clear_errors(tmp_path):
    path = tmp_path / "ds"
    write(path, sample_instances(3))
    index = path / "shard_00000.index.bin"
    index.write_bytes(index.read_bytes()[:-8])
    with pytest.raises(DataError, match=r"index\.bin: 136 bytes, but meta\.json says it holds 3 index rows"):
        IndexedDataset(str(path))[0]
    os.remove(path / "shard_00000.tokens.bin")
    with pytest.raises(DataError, match=r"tokens\.bin: the file is missing"):
        IndexedDataset(str(path))[0]

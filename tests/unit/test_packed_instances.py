"""Packed instances (what a preprocessing worker sends back) write the same bytes as instance-by-instance
``DatasetWriter.add``, shard boundaries included, and iterate back to the instances packed."""

import os

import numpy as np
import pytest

from uer.data.dataset import DatasetWriter
from uer.data.packed import PackedInstances


def random_instances(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 50, size=int(rng.integers(0, 12))).astype(np.int32), (int(rng.integers(0, 9)), i % 2))
            for i in range(n)]


def written(tmp_path, name, instances, packed: bool, shard_max_tokens: int):
    writer = DatasetWriter(str(tmp_path / name), streams=["src"], fields=["seg_a_len", "label"], vocab_size=50,
                           shard_max_tokens=shard_max_tokens)
    with writer:
        if packed:
            p = PackedInstances.pack(instances)
            half = len(p) // 2     # two calls, as two blocks arrive
            writer.add_packed(p.tokens[:p.lengths[:half].sum()], p.lengths[:half], p.fields[:half])
            writer.add_packed(p.tokens[p.lengths[:half].sum():], p.lengths[half:], p.fields[half:])
        else:
            for src, fields in instances:
                writer.add({"src": src}, fields)
    path = str(tmp_path / name)
    files = {f: open(os.path.join(path, f), "rb").read() for f in sorted(os.listdir(path))}
    return files, writer.shards, writer.max_length


@pytest.mark.parametrize("shard_max_tokens", [1, 7, 40, 1 << 28])
def test_add_packed_writes_the_same_bytes_as_add(tmp_path, shard_max_tokens):
    instances = random_instances(60)
    one = written(tmp_path, "one", instances, False, shard_max_tokens)
    many = written(tmp_path, "many", instances, True, shard_max_tokens)
    assert one == many
    assert (len(one[1]) > 1) == (shard_max_tokens < 1 << 28)


def test_pack_round_trip_and_refusals():
    instances = random_instances(20, seed=3)
    packed = PackedInstances.pack(instances)
    assert len(packed) == 20
    assert all(np.array_equal(a, b) and f == g for (a, f), (b, g) in zip(packed, instances))
    assert PackedInstances.pack([]) is None
    assert PackedInstances.pack([({"src": np.arange(3)}, (1,))]) is None       # several streams: one by one


def test_add_packed_checks_ids_and_lengths(tmp_path):
    writer = DatasetWriter(str(tmp_path / "d"), streams=["src"], fields=["label"], vocab_size=10)
    with pytest.raises(ValueError, match="out of range"):
        writer.add_packed(np.array([1, 10]), np.array([2]), np.array([[0]]))
    with pytest.raises(ValueError, match="lengths summing"):
        writer.add_packed(np.array([1, 2]), np.array([3]), np.array([[0]]))
    writer.abort()

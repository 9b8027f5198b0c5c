"""A block's instances as three arrays, which is what a preprocessing worker sends back to the main process.

A block of 10,000 documents makes some 32,000 instances; as one small numpy array each they cost a pickle
header, an object and a separate write apiece, and their memory is scattered.  Packed, they are one token
buffer, one length per instance and one row of fields per instance: a few large pickles, one write per
shard (``DatasetWriter.add_packed``), and iterating gives back exactly the instances that were packed."""

from dataclasses import dataclass
from typing import Iterator, List, Optional

import numpy as np

from uer.data.processors.base import Instance


@dataclass
class PackedInstances:
    tokens: np.ndarray      # every instance's src ids, back to back
    lengths: np.ndarray     # int64, one per instance
    fields: np.ndarray      # int64, (instances, fields)

    @classmethod
    def pack(cls, instances: List[Instance]) -> Optional["PackedInstances"]:
        """None when the instances are not plain one-stream ones (a dict of streams: seq2seq) or hold no
        instance at all: those are written one by one, as before."""
        if not instances or not all(isinstance(src, np.ndarray) and src.ndim == 1 for src, _ in instances):
            return None
        lengths = np.fromiter((len(src) for src, _ in instances), dtype=np.int64, count=len(instances))
        width = len(instances[0][1])
        if any(len(f) != width for _, f in instances):
            return None
        fields = np.array([f for _, f in instances], dtype=np.int64).reshape(len(instances), width)
        return cls(np.concatenate([src for src, _ in instances]), lengths, fields)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[Instance]:
        ends = np.cumsum(self.lengths)
        for i, end in enumerate(ends):
            yield self.tokens[end - self.lengths[i]:end], tuple(int(v) for v in self.fields[i])

"""Sequence lengths known on the host, so the model never reads them back from the device.

The collator builds ``seg`` on the CPU, so it knows each row's real-token count before the batch
moves to the accelerator.  It hands that count down as a ``HostLengths`` next to ``seg`` (batch key
``seg_lengths``, ``tgt_seg_lengths`` for the decoder's ``tgt_seg``); ``Model`` passes it to the
encoder / decoder, where it picks SDPA's mask-free fast path (no padding at all) and unpadding's
stream size without a device-to-host sync (``bool(keep.all())``, ``lengths.tolist()``).

Every consumer takes it as optional: a caller without it (generation, fine-tuning tasks, tests that
build ``seg`` by hand) gets the same result from a device check, at the cost of one sync.  The
lengths must describe the ``seg`` they travel with: rows right-padded (what every collator writes),
row i's tokens at positions 0 .. lengths[i] - 1.  ``for_seg`` drops lengths of another shape.
"""

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch


@dataclass(frozen=True)
class HostLengths:
    lengths: Tuple[int, ...]      # real tokens of each row (seg > 0)
    width: int                    # L: the padded length of seg

    @classmethod
    def of(cls, seg) -> "HostLengths":
        """From a host (numpy or CPU tensor) ``seg`` (B, L) with 0 at padding; the collator's call."""
        real = np.asarray(seg) > 0
        return cls(tuple(int(n) for n in real.sum(axis=1)), int(real.shape[1]))

    @property
    def has_padding(self) -> bool:
        return any(n < self.width for n in self.lengths)

    @property
    def total(self) -> int:
        return sum(self.lengths)

    @property
    def longest(self) -> int:
        return max(self.lengths, default=0)

    def for_seg(self, seg: torch.Tensor) -> Optional["HostLengths"]:
        """Self when it describes a seg of this shape, else None (the caller falls back to a device
        check): a model that rebuilds or slices seg must not inherit the batch's lengths."""
        return self if tuple(seg.shape) == (len(self.lengths), self.width) else None


def has_padding(lengths: Optional[HostLengths], seg: torch.Tensor) -> bool:
    """Whether ``seg`` has a padding position: from the host lengths when given (no sync), else read
    back from the device (one sync)."""
    known = lengths.for_seg(seg) if lengths is not None else None
    if known is not None:
        return known.has_padding
    return not bool((seg > 0).all())

"""The bytes of the largest tensor any aten op returns while active: a memory measure that works on
the CPU, whose allocator keeps no peak statistics (and whose buffers tracemalloc does not see).
Used by benchmarks/speed_switch_sizes.py and the vocabulary-loss tests."""

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class LargestTensor(TorchDispatchMode):
    """``with LargestTensor() as mode: ...`` then ``mode.largest`` (bytes), forward and backward."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel() * t.element_size())
        return out

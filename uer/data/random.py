"""Counter-based random numbers for data corruption.

Masking must be reproducible per instance — the same instance gets the same mask in epoch e whatever
the batch it lands in, the number of ranks or data workers, and after a resume — and it must be
vectorised over the batch.  A stateful generator gives neither, so every value is a hash
(splitmix64) of (seed, epoch, stream, instance index, position).
"""

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def uniform(seed: int, epoch: int, stream: int, indices: np.ndarray, length: int) -> np.ndarray:
    """Uniform floats in [0, 1) of shape (len(indices), length); row i depends only on
    (seed, epoch, stream, indices[i])."""
    with np.errstate(over="ignore"):
        key = _mix(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
        key = _mix(key ^ np.uint64(epoch & 0xFFFFFFFF))
        key = _mix(key ^ (np.uint64(stream) * _GOLDEN))
        rows = _mix(key ^ (np.asarray(indices, dtype=np.uint64) * _GOLDEN))            # (B,)
        cols = np.arange(length, dtype=np.uint64) * _GOLDEN                               # (L,)
        values = _mix(rows[:, None] + cols[None, :] + np.uint64(1))
    return (values >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))

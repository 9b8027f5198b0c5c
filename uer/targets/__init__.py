"""Target registry members; importing this package registers them.

A target is built as ``cls(config, embedding)`` and called as ``target(hidden, batch)``; it returns a
dict with "loss" and any metrics, each named with the target's prefix (``mlm_acc`` ...).
"""

from uer.targets import mlm, sp, lm, cls, rtd  # noqa: F401
from uer.targets.target_set import TargetSet  # noqa: F401

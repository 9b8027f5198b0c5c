"""What every pretraining runner records, and how it hands it back (benchmarks/pretrain_throughput.py).

Kept free of any ``uer`` import: the UER-py runner loads this file next to UER-py's own ``uer``
package, whose name clashes with ours.  A runner calls ``StepClock.batch`` for each batch it feeds
the model (its real tokens and padded length, counted on the host before the step), ``loss`` for
each training loss, and ``step_done`` right after each optimizer step; the orchestrator times step
k as the gap between step_done k-1 and k, so data loading is inside the timed window as a real run
has it, and the warm-up steps (the first ``warmup``) are left out.
"""

import json
import resource
import sys
import time
from typing import List, Optional

RESULT_PREFIX = "BENCH_RESULT "


class StepClock:
    def __init__(self, warmup: int, steps: int, name: str, progress_every_s: float = 30.0):
        if warmup < 1 or steps < 1:
            raise ValueError(f"warmup ({warmup}) and steps ({steps}) must be at least 1: step 1's start "
                             "is the first timestamp of the timed window")
        self.warmup, self.steps, self.name = warmup, steps, name
        self.progress_every_s = progress_every_s
        self.done_at: List[float] = []
        self.tokens: List[object] = []      # ints or 0-dim CPU tensors, made numbers at the end
        self.lengths: List[int] = []
        self.losses: List[object] = []
        self.started = time.perf_counter()
        self._last_progress = self.started

    @property
    def total(self) -> int:
        return self.warmup + self.steps

    def batch(self, real_tokens, padded_length: int) -> None:
        self.tokens.append(real_tokens)
        self.lengths.append(int(padded_length))

    def loss(self, value) -> None:
        self.losses.append(value.detach() if hasattr(value, "detach") else value)

    def step_done(self) -> None:
        now = time.perf_counter()
        self.done_at.append(now)
        if now - self._last_progress >= self.progress_every_s:     # a live line on long (compile) runs
            self._last_progress = now
            print(f"[{self.name}] step {len(self.done_at)}/{self.total} after {now - self.started:.0f} s",
                  file=sys.stderr, flush=True)

    def result(self, **extra) -> dict:
        if len(self.done_at) < self.total:
            raise RuntimeError(f"{self.name}: only {len(self.done_at)} of {self.total} steps were recorded")
        w, n = self.warmup, self.steps
        times = [self.done_at[k] - self.done_at[k - 1] for k in range(w, w + n)]
        return {"system": self.name, "warmup": w, "steps": n, "step_s": times,
                "tokens": [int(t) for t in self.tokens[w:w + n]], "lengths": self.lengths[w:w + n],
                "all_tokens": [int(t) for t in self.tokens[:w + n]],
                "losses": [float(v) for v in self.losses[:w + n]],
                "peak_rss_mib": peak_rss_mib(), **extra}


def peak_rss_mib() -> float:
    """This process's peak resident set (data-loader workers are separate processes, not included)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024


def emit(result: dict) -> None:
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def parse_result(stdout: str) -> Optional[dict]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    return None

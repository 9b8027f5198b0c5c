"""Metrics: running means over a report interval, a JSONL file beside the checkpoints, log lines."""

import json
import logging
import os
import time
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import torch

logger = logging.getLogger("uer")


class MetricsLog:
    """Appends one JSON object per report to ``path``.  On resume, lines past the resumed step are
    dropped so the file describes exactly one run.

    The existing file is left alone until the first record is written: a run that fails before its
    first report (a bad first batch, a refused flag) leaves the previous run's log intact."""

    def __init__(self, path: Optional[str], resume_step: Optional[int] = None):
        self.path = path
        self.resume_step = resume_step
        self._started = False

    def _start(self) -> None:
        self._started = True
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        if self.resume_step is None:
            open(self.path, "w").close()
        elif os.path.exists(self.path):
            kept = []
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        if json.loads(line).get("step", 0) <= self.resume_step:
                            kept.append(line if line.endswith("\n") else line + "\n")
                    except json.JSONDecodeError:
                        break      # a line cut by the interruption: stop there
            with open(self.path, "w", encoding="utf-8") as f:
                f.writelines(kept)

    def write(self, record: Dict) -> None:
        if self.path is None:
            return
        if not self._started:
            self._start()
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def host_floats(values: Sequence) -> List[float]:
    """Python floats of numbers and 0-dim tensors, with one device-to-host copy per device instead
    of one ``.item()`` (one stall of the host on the GPU) per value.  Called at log steps only."""
    out: List[Optional[float]] = [None] * len(values)
    by_device: Dict[torch.device, List[int]] = defaultdict(list)
    for i, v in enumerate(values):
        if torch.is_tensor(v):
            by_device[v.device].append(i)
        else:
            out[i] = float(v)
    for device, indices in by_device.items():
        stacked = torch.stack([values[i].detach().reshape(()).to(_accumulator_dtype(device)) for i in indices])
        for i, value in zip(indices, stacked.tolist()):     # the one copy (a sync on a GPU)
            out[i] = value
    return out


def _accumulator_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64     # MPS has no float64


class RunningMeans:
    """Means over a report interval of numbers or 0-dim tensors.  Tensors are summed where they are
    (on the GPU: no host sync per value); ``means()`` brings them back once."""

    def __init__(self):
        self.sums: Dict[str, object] = defaultdict(float)
        self.counts: Dict[str, int] = defaultdict(int)

    def add(self, values: Dict[str, object]) -> None:
        for k, v in values.items():
            if torch.is_tensor(v):
                v = v.detach().to(_accumulator_dtype(v.device))
            else:
                v = float(v)
            self.sums[k] = self.sums[k] + v
            self.counts[k] += 1

    def means(self) -> Dict[str, float]:
        keys = list(self.sums)
        return {k: total / self.counts[k] for k, total in zip(keys, host_floats([self.sums[k] for k in keys]))}

    def reset(self) -> None:
        self.sums.clear()
        self.counts.clear()


class Throughput:
    """Real tokens and model FLOPs per second over a report interval.  Counts may be 0-dim CPU
    tensors (the collator's): they are added as tensors and read at ``lap()``, so counting a batch
    converts nothing to a Python number inside the step."""

    def __init__(self):
        self.start = self.last = time.perf_counter()
        self.tokens = 0
        self.flops = 0.0

    def add_tokens(self, n) -> None:
        self.tokens = self.tokens + n

    def add_flops(self, flops) -> None:
        self.flops = self.flops + flops

    def lap(self) -> Dict[str, float]:
        now = time.perf_counter()
        elapsed = max(now - self.last, 1e-9)
        tokens, flops = host_floats([self.tokens, self.flops])
        self.last, self.tokens, self.flops = now, 0, 0.0
        return {"tokens_per_s": tokens / elapsed, "tflops": flops / elapsed / 1e12, "elapsed_s": elapsed}


def peak_memory_mib(device: torch.device) -> float:
    """The most memory this process has held so far, in MiB: on a GPU the peak of tensors allocated
    on it (torch.cuda.max_memory_allocated; no sync), elsewhere the process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    import resource
    import sys
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024      # bytes on macOS, KiB on Linux


def format_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"

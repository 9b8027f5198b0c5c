"""Metrics: running means over a report interval, a JSONL file beside the checkpoints, log lines."""

import json
import logging
import os
import time
from collections import defaultdict
from typing import Dict, Optional

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


class RunningMeans:
    def __init__(self):
        self.sums: Dict[str, float] = defaultdict(float)
        self.counts: Dict[str, int] = defaultdict(int)

    def add(self, values: Dict[str, float]) -> None:
        for k, v in values.items():
            self.sums[k] += float(v)
            self.counts[k] += 1

    def means(self) -> Dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums}

    def reset(self) -> None:
        self.sums.clear()
        self.counts.clear()


class Throughput:
    def __init__(self):
        self.start = self.last = time.perf_counter()
        self.tokens = 0

    def add_tokens(self, n: int) -> None:
        self.tokens += n

    def lap(self) -> Dict[str, float]:
        now = time.perf_counter()
        elapsed = max(now - self.last, 1e-9)
        rate = self.tokens / elapsed
        self.last, self.tokens = now, 0
        return {"tokens_per_s": rate, "elapsed_s": elapsed}


def format_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"

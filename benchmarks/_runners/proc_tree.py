"""Peak memory of a whole process tree (a command and every process it forks), sampled from /proc.

``ru_maxrss`` and ``/usr/bin/time`` report one process, and a preprocessing run is a parent plus worker
processes; summing the children's own peaks would add peaks that never coincided.  So a thread polls the
tree every ``interval`` seconds (20 Hz by default) and keeps the largest *sum* of resident set sizes seen.
Children are found through ``/proc/<pid>/task/<tid>/children`` of every thread (a pool may fork from a
helper thread), so each poll reads a handful of files, not all of /proc.  RSS counts pages shared between
a parent and its forked children once per process: the figure is an upper bound, the same way for every
system measured."""

import os
import subprocess
import threading
import time
from typing import List, Optional, Set

PAGE = os.sysconf("SC_PAGE_SIZE")


def _children(pid: int) -> List[int]:
    found: List[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return found


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):    # the process ended between listing and reading
        return 0


def tree_rss_bytes(root: int) -> int:
    """Sum of RSS over ``root`` and all of its descendants, now."""
    total, todo = 0, [root]
    seen: Set[int] = set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += _rss_bytes(pid)
        todo.extend(_children(pid))
    return total


class TreeSampler:
    """``with TreeSampler(proc.pid) as s: proc.wait()``; then ``s.peak_bytes``, ``s.samples``."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid, self.interval = pid, interval
        self.peak_bytes, self.samples = 0, 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _poll(self) -> None:
        while True:
            self.peak_bytes = max(self.peak_bytes, tree_rss_bytes(self.pid))
            self.samples += 1
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "TreeSampler":
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def run_sampled(cmd: List[str], cwd: str, timeout: float, interval: float = 0.05) -> dict:
    """Run ``cmd``; return its exit status, wall seconds, peak tree RSS (bytes), stdout+stderr tail."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with TreeSampler(proc.pid, interval) as sampler:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            return {"returncode": None, "wall_s": time.perf_counter() - start, "peak_bytes": sampler.peak_bytes,
                    "samples": sampler.samples, "output": (output or "") + f"\n(killed after {timeout:.0f} s)"}
    return {"returncode": proc.returncode, "wall_s": time.perf_counter() - start, "peak_bytes": sampler.peak_bytes,
            "samples": sampler.samples, "output": output or ""}

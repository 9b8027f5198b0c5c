"""The Task contract under DDP: every registered task fine-tunes, evaluates, predicts and reloads on
2 CPU processes (torchrun, one launch for all tasks: tests/integration/task_contract_ddp.py); both
ranks report the same scores, the best model reloaded on test (= dev) scores what dev did, and only
rank 0 writes the prediction file."""

import json
import math
import os
import subprocess
import sys

import pytest

from uer.registry import TASKS
import uer.tasks  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def test_every_registered_task_under_ddp(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           os.path.join(HERE, "task_contract_ddp.py"), str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.load(open(tmp_path / "summary.json", encoding="utf-8"))
    assert sorted(summary) == sorted(TASKS.names())
    for task, got in summary.items():
        primary = TASKS.get(task).primary_metric
        rank0, rank1 = got["results"]
        assert rank0 == rank1, task                      # every rank evaluated the same gathered outputs
        assert math.isfinite(rank0["dev"][primary]), task
        assert rank0["test"][primary] == pytest.approx(rank0["dev"][primary]), task   # the best model, reloaded
        assert got["written"] and got["prediction"].strip(), task

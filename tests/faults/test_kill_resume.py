"""kill -9 at any moment, mid-checkpoint included (issue 10, "how it is checked"): the run resumed
with --resume after each kill finishes exactly as the uninterrupted run — the same per-step losses,
learning rates and gradient norms, and bit-identical final weights — with nothing left behind.

"Mid-checkpoint" is made exact by a launcher (test code, not the toolkit's) that SIGKILLs the
process at the moment it is about to rename a named checkpoint file into place: its temporary
file is complete, the file itself not yet there.  The other kills come from outside at seeded
random times over the whole life of a run (imports, startup, training, saving, exiting).
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from uer.models.weights import read_weights

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = 8

KILLING_LAUNCHER = """
import os, runpy, signal, sys
sys.path.insert(0, {root!r})
target = os.environ["UER_TEST_KILL_BEFORE_RENAMING"]
real_replace = os.replace

def replace(src, dst, *args, **kwargs):
    if os.path.basename(os.fspath(dst)) == target:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kwargs)

os.replace = replace
sys.argv = [os.path.join({root!r}, "pretrain.py")] + sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def argv(tiny_corpus, dataset, out, *extra):
    return ["--dataset_path", dataset, "--vocab_path", str(tiny_corpus / "vocab.txt"), "--config_path",
            str(tiny_corpus / "tiny_bert.json"), "--output_model_path", str(out), "--total_steps", str(STEPS),
            "--save_checkpoint_steps", "2", "--report_steps", "1", "--batch_size", "4", "--num_workers", "0",
            "--seed", "5", "--dropout", "0.1", *extra]


def start(args, launcher=None, env=None):
    script = [str(launcher)] if launcher else [os.path.join(ROOT, "pretrain.py")]
    return subprocess.Popen([sys.executable, *script, *map(str, args)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1", **(env or {})))


def has_checkpoint(out):
    folder, name = os.path.split(str(out))
    return any(f.startswith(name + "-") and f.endswith(".state.pt") for f in os.listdir(folder))


def continue_run(tiny_corpus, dataset, out, **popen):
    """--resume when a checkpoint exists, else a fresh start (--overwrite: a killed run may have left
    its config and first metric lines)."""
    flag = "--resume" if has_checkpoint(out) else "--overwrite"
    return start(argv(tiny_corpus, dataset, out, flag), **popen)


def record(out):
    with open(str(out) + ".metrics.jsonl") as f:
        curve = [(r["step"], r["loss"], r["lr"], r["grad_norm"]) for r in map(json.loads, f)]
    return curve, read_weights(str(out))


def assert_same_run(got, want):
    assert got[0] == want[0]                                        # every step's loss, lr, grad norm
    assert set(got[1]) == set(want[1]) and all(torch.equal(got[1][k], want[1][k]) for k in want[1])


def assert_no_litter(out):
    folder = os.path.dirname(str(out))
    assert not [f for f in os.listdir(folder) if ".tmp" in f or f.endswith(".lock")], os.listdir(folder)


@pytest.fixture(scope="module")
def straight(tiny_corpus, dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "m.bin"
    began = time.monotonic()
    proc = start(argv(tiny_corpus, dataset, out))
    assert proc.wait(timeout=300) == 0, proc.stderr.read()[-2000:]
    return record(out), time.monotonic() - began


@pytest.mark.parametrize("file", ["m.bin-4", "m.bin-4.state.pt", "m.bin-2.state.pt", "m.bin"])
def test_a_kill_mid_checkpoint_resumes_bit_identically(file, straight, tiny_corpus, dataset, tmp_path):
    launcher = tmp_path / "kill_before_rename.py"
    launcher.write_text(KILLING_LAUNCHER.format(root=ROOT))
    out = tmp_path / "m.bin"
    proc = start(argv(tiny_corpus, dataset, out), launcher=launcher, env={"UER_TEST_KILL_BEFORE_RENAMING": file})
    assert proc.wait(timeout=300) == -signal.SIGKILL, proc.stderr.read()[-2000:]
    assert not os.path.exists(tmp_path / file)                  # killed before it was in place
    proc = continue_run(tiny_corpus, dataset, out)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()[-2000:]
    assert_same_run(record(out), straight[0])
    assert_no_litter(out)


def test_kills_at_random_moments_resume_bit_identically(straight, tiny_corpus, dataset, tmp_path):
    out = tmp_path / "m.bin"
    rng = random.Random(2026)
    killed = 0
    for _ in range(4):
        proc = continue_run(tiny_corpus, dataset, out)
        try:
            proc.wait(timeout=rng.uniform(0.3, 1.0) * straight[1])
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        code = proc.wait(timeout=60)
        assert code in (0, -signal.SIGKILL), proc.stderr.read()[-2000:]
        if code == 0:
            break
    assert killed, "no kill landed: the delays are longer than a run"
    if proc.returncode != 0:
        proc = continue_run(tiny_corpus, dataset, out)
        assert proc.wait(timeout=300) == 0, proc.stderr.read()[-2000:]
    assert_same_run(record(out), straight[0])
    assert_no_litter(out)

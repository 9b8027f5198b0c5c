"""Runs that would clobber runs (issue 10, item 4): a run holds <output_model_path>.lock for its
lifetime, a second run into the same place is refused naming the holder's pid, a stale lock is taken
over, a fresh run never mixes with an earlier run's checkpoints, and a run that fails at its first
batch leaves the earlier run's files byte-identical."""

import logging
import os
import subprocess
import sys
import textwrap

import pytest

from uer.cli import pretrain
from uer.cli.tasks import finetune_main
from uer.errors import ConfigError, DataError
from uer.training.run_lock import RunLock

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pretrain_argv(tiny_corpus, dataset, out, steps=2, *extra):
    return ["--dataset_path", dataset, "--vocab_path", str(tiny_corpus / "vocab.txt"), "--config_path",
            str(tiny_corpus / "tiny_bert.json"), "--output_model_path", str(out), "--total_steps", str(steps),
            "--save_checkpoint_steps", "2", "--report_steps", "1", "--batch_size", "4", "--num_workers", "0",
            *extra]


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: ") and not any("Traceback" in line for line in err), err
    return err[-1]


def files(directory):
    return {name: open(os.path.join(directory, name), "rb").read() for name in sorted(os.listdir(directory))
            if os.path.isfile(os.path.join(directory, name))}


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of a path, until the test ends."""
    procs = []

    def hold(out):
        code = textwrap.dedent(f"""
            import sys, time
            sys.path.insert(0, {ROOT!r})
            from uer.training.run_lock import RunLock
            RunLock({str(out)!r}).acquire()
            print("held", flush=True)
            time.sleep(120)
        """)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc
    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_second_process_is_refused_naming_the_holder(tiny_corpus, dataset, tmp_path, holder, capsys):
    out = tmp_path / "m.bin"
    proc = holder(out)
    with pytest.raises(SystemExit) as info:
        pretrain.main(pretrain_argv(tiny_corpus, dataset, out))
    assert info.value.code == 2
    line = error_line(capsys)
    assert f"pid {proc.pid}" in line and "in use by another run" in line, line
    assert sorted(os.listdir(tmp_path)) == ["m.bin.lock"]          # the refused run wrote nothing
    with pytest.raises(SystemExit):
        finetune_main("classification")(["--vocab_path", str(tiny_corpus / "vocab.txt"), "--train_path",
                                          str(tiny_corpus / "dev.tsv"), "--dev_path", str(tiny_corpus / "dev.tsv"),
                                          "--output_model_path", str(out)])
    assert f"pid {proc.pid}" in error_line(capsys)


def test_the_lock_is_exclusive_in_one_process_and_released(tmp_path):
    first = RunLock(str(tmp_path / "m.bin")).acquire()
    with pytest.raises(ConfigError, match=f"pid {os.getpid()}"):
        RunLock(str(tmp_path / "m.bin")).acquire()
    first.release()
    assert not (tmp_path / "m.bin.lock").exists()
    with RunLock(str(tmp_path / "m.bin")):      # free again
        assert (tmp_path / "m.bin.lock").exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / "m.bin.lock").write_text(f"pid {pid} on somewhere\n")
    with caplog.at_level(logging.WARNING, logger="uer"):
        lock = RunLock(str(tmp_path / "m.bin")).acquire()
    assert f"pid {pid}" in caplog.text and "stale lock" in caplog.text
    assert (tmp_path / "m.bin.lock").read_text().startswith(f"pid {os.getpid()} ")
    lock.release()


def test_fresh_run_over_an_earlier_run_is_refused_unless_overwrite(tiny_corpus, dataset, tmp_path, capsys):
    out = tmp_path / "m.bin"
    pretrain.main(pretrain_argv(tiny_corpus, dataset, out, 4))
    assert {"m.bin-2", "m.bin-4", "m.bin"} <= set(os.listdir(tmp_path))
    before = files(tmp_path)
    with pytest.raises(SystemExit) as info:
        pretrain.main(pretrain_argv(tiny_corpus, dataset, out, 2))
    assert info.value.code == 2
    line = error_line(capsys)
    assert "an earlier run's files" in line and "--resume" in line and "--overwrite" in line, line
    assert files(tmp_path) == before
    with pytest.raises(SystemExit):
        pretrain.main(pretrain_argv(tiny_corpus, dataset, out, 2, "--overwrite", "--resume"))
    assert "pass one of them" in error_line(capsys)
    # --overwrite starts over: the earlier run's step-4 checkpoint must not survive for a later --resume.
    pretrain.main(pretrain_argv(tiny_corpus, dataset, out, 2, "--overwrite"))
    names = set(os.listdir(tmp_path))
    assert "m.bin-2" in names and "m.bin-4" not in names and "m.bin-4.state.pt" not in names, names
    assert "m.bin.lock" not in names
    assert [line.count('"step"') for line in open(tmp_path / "m.bin.metrics.jsonl")] == [1, 1]


class FailingCollator(pretrain.PretrainCollator):
    def __call__(self, *args, **kwargs):
        raise DataError("injected: the first batch cannot be built")


def test_a_run_failing_at_its_first_batch_leaves_the_earlier_run_intact(tiny_corpus, dataset, tmp_path, capsys,
                                                                        monkeypatch):
    out = tmp_path / "m.bin"
    pretrain.main(pretrain_argv(tiny_corpus, dataset, out, 2))
    before = files(tmp_path)
    assert {"m.bin.metrics.jsonl", "m.bin.run.json", "m.bin.config.json"} <= set(before)
    monkeypatch.setattr(pretrain, "PretrainCollator", FailingCollator)
    for extra in (["--overwrite"], ["--resume"]):
        with pytest.raises(SystemExit) as info:
            pretrain.main(pretrain_argv(tiny_corpus, dataset, out, 4, *extra))
        assert info.value.code == 2
        assert "injected" in error_line(capsys)
        assert files(tmp_path) == before, extra       # metrics, run.json, config, checkpoints: untouched


def test_ddp_only_rank_0_takes_the_lock_and_no_rank_hangs(tiny_corpus, dataset, tmp_path, holder):
    out = tmp_path / "m.bin"
    proc = holder(out)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           os.path.join(ROOT, "pretrain.py"), *pretrain_argv(tiny_corpus, dataset, out), "--engine", "ddp"]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    # Every rank that got to print says why (torchrun may stop rank 1 first); none waited for rank 0.
    assert errors and all(f"pid {proc.pid}" in line for line in errors), run.stderr[-3000:]
    assert not os.path.exists(str(out) + ".metrics.jsonl")

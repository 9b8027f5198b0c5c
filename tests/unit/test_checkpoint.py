"""Checkpoints (write order, numeric latest, full round trip, atomicity, damaged files), the metrics
log on resume, and exact RNG capture/restore."""

import json
import os
import random

import numpy as np
import pytest
import torch
from torch import nn

import uer.training.checkpoint as checkpoint_module
from uer.errors import CheckpointError
from uer.training.checkpoint import CheckpointManager
from uer.training.metrics import MetricsLog, RunningMeans, Throughput, format_eta
from uer.training.rng import rng_state, set_rng_state
from uer.utils import atomic_torch_save, atomic_write_text


def small_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))


def trained_optimizer(model):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(3):
        model(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    return opt


def temp_files(directory):
    return [n for n in os.listdir(directory) if n.endswith(".tmp") or ".tmp-" in n]


# --------------------------------------------------------------------------- CheckpointManager

def test_save_writes_weights_then_state(tmp_path, monkeypatch):
    order = []
    real_weights, real_save = checkpoint_module.save_weights, checkpoint_module.atomic_torch_save

    def weights(model, path):
        order.append(("weights", os.path.basename(path)))
        real_weights(model, path)

    def state(obj, path):
        assert os.path.isfile(path[: -len(".state.pt")])          # the weights are already there
        order.append(("state", os.path.basename(path)))
        real_save(obj, path)

    monkeypatch.setattr(checkpoint_module, "save_weights", weights)
    monkeypatch.setattr(checkpoint_module, "atomic_torch_save", state)
    manager = CheckpointManager(str(tmp_path / "out.bin"))
    path = manager.save(12, small_model(), {"sampler": {"epoch": 0, "batch_in_epoch": 3}})
    assert path == str(tmp_path / "out.bin-12.state.pt")
    assert order == [("weights", "out.bin-12"), ("state", "out.bin-12.state.pt")]
    assert sorted(os.listdir(tmp_path)) == ["out.bin-12", "out.bin-12.state.pt"]


def test_a_failed_weights_write_leaves_no_state_file(tmp_path, monkeypatch):
    def broken(model, path):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module, "save_weights", broken)
    manager = CheckpointManager(str(tmp_path / "out.bin"))
    with pytest.raises(OSError):
        manager.save(5, small_model(), {})
    assert manager.latest() is None and os.listdir(tmp_path) == []


def test_latest_is_numeric_not_lexicographic(tmp_path):
    manager = CheckpointManager(str(tmp_path / "out.bin"))
    assert manager.latest() is None
    model = small_model()
    for step in (9, 10):
        manager.save(step, model, {})
    assert manager.latest() == manager.state_path(10)
    manager.save(100, model, {})
    manager.save(2, model, {})
    assert manager.latest() == str(tmp_path / "out.bin-100.state.pt")
    # Files that are not this run's state files are ignored.
    for name in ("out.bin-5000", "out.bin-abc.state.pt", "out.bin-7000.state.pt.123.tmp",
                 "other.bin-9000.state.pt", "out.bin-x-8000.state.pt"):
        (tmp_path / name).write_bytes(b"")
    assert manager.latest() == str(tmp_path / "out.bin-100.state.pt")


def test_latest_with_glob_characters_in_the_path(tmp_path):
    manager = CheckpointManager(str(tmp_path / "run[1]" / "m*.bin"))
    manager.save(3, small_model(), {})
    manager.save(20, small_model(), {})
    assert manager.latest() == manager.state_path(20)


def test_load_round_trips_everything(tmp_path):
    model = small_model(1)
    opt = trained_optimizer(model)
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    run_info = {"model_config": {"encoder": "transformer", "layers_num": 2, "dropout": 0.1,
                                 "embedding": ["word", "pos"], "tie": True, "none": None},
                "args": {"seed": 7, "lr": 1e-4, "nested": [[1, 2], {"a": "b"}], "pair": (1, 2)}}
    state = {"engine": {"optimizer": opt.state_dict(), "skipped_steps": 2},
             "sampler": {"epoch": 1, "batch_in_epoch": 4}, "rng": rng_state(), "run_info": run_info}
    manager = CheckpointManager(str(tmp_path / "models" / "out.bin"))
    manager.save(30, model, state)
    expected_next = (random.random(), float(np.random.rand()), torch.rand(3))

    loaded = CheckpointManager.load(manager.latest())
    assert loaded["step"] == 30 and loaded["weights"] == "out.bin-30"
    assert loaded["run_info"]["model_config"] == run_info["model_config"]
    assert loaded["run_info"]["args"]["nested"] == [[1, 2], {"a": "b"}]
    assert tuple(loaded["run_info"]["args"]["pair"]) == (1, 2)
    assert loaded["sampler"] == {"epoch": 1, "batch_in_epoch": 4}
    # Weights.
    for k, v in model.state_dict().items():
        assert torch.equal(loaded["model"][k], v)
    # Optimizer: a fresh optimizer loaded from the file continues exactly like the original.
    model2 = small_model(2)
    model2.load_state_dict(loaded["model"])
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-2)
    opt2.load_state_dict(loaded["engine"]["optimizer"])
    x = torch.randn(5, 4)
    for m, o in ((model, opt), (model2, opt2)):
        m(x).pow(2).mean().backward()
        o.step()
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q)
    # RNG: restoring the saved state replays the same draws.
    set_rng_state(loaded["rng"])
    assert random.random() == expected_next[0]
    assert float(np.random.rand()) == expected_next[1]
    assert torch.equal(torch.rand(3), expected_next[2])
    assert temp_files(tmp_path / "models") == []


def test_truncated_or_missing_files_are_checkpoint_errors(tmp_path):
    manager = CheckpointManager(str(tmp_path / "out.bin"))
    manager.save(4, small_model(), {"rng": rng_state()})
    path = manager.state_path(4)
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        CheckpointManager.load(path)
    with open(path, "wb") as f:
        f.write(b"")
    with pytest.raises(CheckpointError):
        CheckpointManager.load(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        CheckpointManager.load(str(tmp_path / "out.bin-99.state.pt"))
    # A state file whose weights are gone.
    manager.save(5, small_model(), {})
    os.remove(manager.weights_path(5))
    with pytest.raises(CheckpointError):
        CheckpointManager.load(manager.state_path(5))


@pytest.mark.parametrize("which", ["weights", "list"])
def test_loading_something_that_is_not_a_state_file_is_a_checkpoint_error(tmp_path, which):
    manager = CheckpointManager(str(tmp_path / "out.bin"))
    manager.save(10, small_model(), {})
    path = manager.weights_path(10)
    if which == "list":
        path = str(tmp_path / "x.state.pt")
        torch.save([1, 2], path)
    with pytest.raises(CheckpointError):
        CheckpointManager.load(path)


def test_save_final_writes_the_plain_prefix(tmp_path):
    manager = CheckpointManager(str(tmp_path / "out.bin"))
    model = small_model()
    manager.save_final(model)
    loaded = torch.load(str(tmp_path / "out.bin"), weights_only=True)
    assert set(loaded) == set(model.state_dict())
    assert manager.latest() is None


# --------------------------------------------------------------------------- atomic writes

def test_atomic_torch_save_replaces_and_cleans_up(tmp_path):
    path = str(tmp_path / "sub" / "x.pt")
    atomic_torch_save({"a": torch.ones(2)}, path)
    atomic_torch_save({"a": torch.zeros(2)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.zeros(2))
    with pytest.raises(Exception):
        atomic_torch_save({"bad": lambda: None}, path)           # unpicklable: fails mid-write
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.zeros(2))   # old file intact
    assert os.listdir(tmp_path / "sub") == ["x.pt"]


def test_atomic_write_text_replaces_and_cleans_up(tmp_path):
    path = str(tmp_path / "run.json")
    atomic_write_text(path, "one\n")
    atomic_write_text(path, "two\n")
    assert open(path).read() == "two\n"
    with pytest.raises(TypeError):
        atomic_write_text(path, 3)
    assert open(path).read() == "two\n" and os.listdir(tmp_path) == ["run.json"]


# --------------------------------------------------------------------------- metrics log

def lines(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_metrics_log_fresh_run_truncates(tmp_path):
    path = str(tmp_path / "logs" / "m.jsonl")
    log = MetricsLog(path)
    log.write({"step": 1, "loss": 2.0})
    again = MetricsLog(path)
    assert lines(path) == [{"step": 1, "loss": 2.0}]      # a run that never reports leaves the log alone
    again.write({"step": 1, "loss": 3.0})
    assert lines(path) == [{"step": 1, "loss": 3.0}]


def test_metrics_log_resume_drops_later_lines_and_a_cut_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in (10, 20, 30, 40))
                    + '{"step": 50, "lo')
    log = MetricsLog(str(path), resume_step=20)
    assert path.read_text().endswith('{"step": 50, "lo')      # untouched until the first record
    log.write({"step": 30, "loss": 0.5})
    assert [r["step"] for r in lines(path)] == [10, 20, 30]
    # Resuming past every line keeps them all but still drops the cut one.
    path.write_text('{"step": 10}\n{"step": 20}\n{"st')
    MetricsLog(str(path), resume_step=1000).write({"step": 1001})
    assert lines(path) == [{"step": 10}, {"step": 20}, {"step": 1001}]


def test_metrics_log_resume_after_a_line_without_newline(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 10}\n{"step": 20}')
    MetricsLog(str(path), resume_step=20).write({"step": 21})
    assert lines(path) == [{"step": 10}, {"step": 20}, {"step": 21}]


def test_metrics_log_resume_without_a_file_and_without_a_path(tmp_path):
    path = str(tmp_path / "m.jsonl")
    MetricsLog(path, resume_step=5).write({"step": 6})
    assert lines(path) == [{"step": 6}]
    MetricsLog(None).write({"step": 1})                            # no file, no error


def test_running_means_throughput_and_eta():
    means = RunningMeans()
    means.add({"loss": 1.0, "acc": 0.5})
    means.add({"loss": 3.0})
    assert means.means() == {"loss": 2.0, "acc": 0.5}
    means.reset()
    assert means.means() == {}
    speed = Throughput()
    speed.add_tokens(1000)
    lap = speed.lap()
    assert lap["tokens_per_s"] > 0 and lap["elapsed_s"] > 0 and speed.tokens == 0
    assert format_eta(3725.7) == "1:02:05" and format_eta(-5) == "0:00:00"


# --------------------------------------------------------------------------- RNG state

def draws():
    return (random.random(), random.getrandbits(64), np.random.rand(3).tolist(),
            float(np.random.standard_normal()), torch.rand(4).tolist(), torch.randn(2).tolist())


@pytest.mark.parametrize("through_file", [False, True])
def test_rng_state_restores_every_generator_exactly(tmp_path, through_file):
    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    draws()
    assert np.random.get_state()[3] == 1     # a cached Gaussian in the legacy numpy state
    state = rng_state()
    if through_file:
        atomic_torch_save(state, str(tmp_path / "rng.pt"))
        state = torch.load(str(tmp_path / "rng.pt"), weights_only=True)
    expected = [draws() for _ in range(3)]
    # Scramble everything, then restore.
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    draws()
    set_rng_state(state)
    assert [draws() for _ in range(3)] == expected
    assert np.random.get_state()[0] == "MT19937"

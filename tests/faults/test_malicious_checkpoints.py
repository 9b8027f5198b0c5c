"""Checkpoints that would run code, or are random bytes (issue 10, items 1 and 7).

A ``__reduce__`` payload that writes a marker file is planted in every file a load path reads:
uer weights and training states (``--resume``, ``--pretrained_model_path``), a Hugging Face
``pytorch_model.bin`` (convert.py), and each ``.pt`` file of a DeepSpeed step directory
(``--resume`` under DeepSpeed, ``scripts/consolidate_checkpoint.py``) — DeepSpeed's own loaders ask
for ``weights_only=False``.  Each load is one ``error:`` line, exit 2, the marker never appears and
the file is left as it was.  Random bytes in a checkpoint are called corrupt, not "pickled objects".
"""

import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from uer.cli import consolidate, pretrain
from uer.cli.tasks import finetune_main
from uer.convert.cli import main as convert_main
from uer.errors import CheckpointError
from uer.models.weights import read_weights

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
needs_deepspeed = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                     reason="DeepSpeed is not installed (pip install -e .[dev])")


class Payload:
    """Unpickling this runs ``exec``: it writes ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def plant(path, marker):
    """Add the payload to a .pt file we trust (we wrote it), keeping its contents otherwise."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(state, dict):
        state["extra"] = Payload(marker)
    else:
        state = {"state": state, "extra": Payload(marker)}
    torch.save(state, path)
    with open(path, "rb") as f:
        return f.read()


def one_error(capsys, call, *needles):
    with pytest.raises(SystemExit) as info:
        call()
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: ") and not any("Traceback" in line for line in err), err
    for needle in needles:
        assert needle in err[-1], (needle, err[-1])
    return err[-1]


def pretrain_argv(tiny_corpus, dataset, out, *extra):
    return ["--dataset_path", dataset, "--vocab_path", str(tiny_corpus / "vocab.txt"), "--config_path",
            str(tiny_corpus / "tiny_bert.json"), "--output_model_path", str(out), "--total_steps", "4",
            "--save_checkpoint_steps", "2", "--report_steps", "1", "--batch_size", "4", "--num_workers", "0",
            "--seed", "3", *extra]


@pytest.fixture(scope="module")
def local_run(tiny_corpus, dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "m.bin"
    pretrain.main(pretrain_argv(tiny_corpus, dataset, out))
    return out


def fresh_copy(run, tmp_path):
    """The run's files in a new directory (the step-2 checkpoint being the newest kept)."""
    target = tmp_path / "run"
    shutil.copytree(os.path.dirname(run), target,
                    ignore=shutil.ignore_patterns("*-4", "*-4.state.pt", "*.lock"))
    return target / os.path.basename(run)


@pytest.mark.parametrize("planted", ["m.bin-2", "m.bin-2.state.pt"])
def test_resume_never_runs_code_from_a_local_checkpoint(planted, local_run, tiny_corpus, dataset, tmp_path, capsys):
    out = fresh_copy(local_run, tmp_path)
    marker = tmp_path / "marker"
    planted_path = str(out.parent / planted)
    before = plant(planted_path, marker)
    one_error(capsys, lambda: pretrain.main(pretrain_argv(tiny_corpus, dataset, out, "--resume")),
              planted_path, "pickled Python objects", "(exec)")
    assert not marker.exists()
    assert open(planted_path, "rb").read() == before


def test_a_pretrained_model_with_code_is_refused(local_run, tiny_corpus, tmp_path, capsys):
    marker = tmp_path / "marker"
    model = str(tmp_path / "pretrained.bin")
    shutil.copy(str(local_run), model)
    plant(model, marker)
    train = tmp_path / "train.tsv"
    train.write_text("label\ttext_a\n" + "".join(f"{i % 2}\tw{i} w{i + 1}\n" for i in range(8)), encoding="utf-8")
    argv = ["--pretrained_model_path", model, "--vocab_path", str(tiny_corpus / "vocab.txt"), "--config_path",
            str(tiny_corpus / "tiny_bert.json"), "--train_path", str(train), "--dev_path", str(train),
            "--output_model_path", str(tmp_path / "out" / "cls.bin"), "--epochs_num", "1", "--seq_length", "16"]
    one_error(capsys, lambda: finetune_main("classification")(argv), model, "pickled Python objects")
    assert not marker.exists()


def test_a_hugging_face_weights_file_with_code_is_refused(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    hf = tmp_path / "hf"
    config = transformers.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=32)
    transformers.BertModel(config).save_pretrained(str(hf))
    from safetensors.torch import load_file     # the older pytorch_model.bin form of the same weights
    weights = str(hf / "pytorch_model.bin")
    torch.save(load_file(str(hf / "model.safetensors")), weights)
    os.remove(hf / "model.safetensors")
    marker = tmp_path / "marker"
    plant(weights, marker)
    one_error(capsys, lambda: convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(hf),
                                            "--output_model_path", str(tmp_path / "out.bin")]),
              weights, "pickled Python objects")
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", os.urandom(4096), b"PK\x03\x04" + os.urandom(600)],
                         ids=["empty", "random", "zip-header"])
def test_random_bytes_are_called_corrupt_not_pickled(content, tmp_path):
    path = tmp_path / "m.bin"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        read_weights(str(path))
    message = str(info.value)
    assert str(path) in message and "pickled" not in message, message
    assert ("empty" if not content else "truncated, corrupt, or not a PyTorch file") in message, message


def test_a_training_state_of_random_bytes_is_one_line(local_run, tiny_corpus, dataset, tmp_path, capsys):
    out = fresh_copy(local_run, tmp_path)
    state = str(out) + "-2.state.pt"
    with open(state, "wb") as f:
        f.write(os.urandom(2048))
    one_error(capsys, lambda: pretrain.main(pretrain_argv(tiny_corpus, dataset, out, "--resume")),
              state, "corrupt")


# ------------------------------------------------------------------------------------ DeepSpeed

def launch(argv):
    """One DeepSpeed process, no launcher (so stderr is pretrain.py's alone)."""
    cmd = [sys.executable, os.path.join(ROOT, "pretrain.py"), *map(str, argv)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))


@pytest.fixture(scope="module")
def deepspeed_runs(tiny_corpus, dataset, tmp_path_factory):
    """One single-process DeepSpeed run per ZeRO stage, made on first use."""
    done = {}

    def run(stage):
        if stage not in done:
            root = tmp_path_factory.mktemp(f"zero{stage}")
            config = root / f"zero{stage}.json"
            zero = {"stage": stage, **({"stage3_param_persistence_threshold": 0} if stage == 3 else {})}
            config.write_text(json.dumps({"zero_optimization": zero}))
            out = root / "m.bin"
            proc = launch(pretrain_argv(tiny_corpus, dataset, out, "--deepspeed", "--deepspeed_config", config))
            assert proc.returncode == 0, proc.stderr[-3000:]
            done[stage] = out, config
        return done[stage]
    return run


@pytest.fixture
def deepspeed_run(deepspeed_runs):
    return deepspeed_runs(2)


def deepspeed_copy(run, tmp_path):
    out, _ = run
    target = tmp_path / "run"
    os.makedirs(target / "m.bin.deepspeed")
    shutil.copytree(str(out) + ".deepspeed/step2", target / "m.bin.deepspeed" / "step2")
    (target / "m.bin.deepspeed" / "latest").write_text("step2")
    return target / "m.bin"


def consolidate_argv(out, tmp_path):
    return ["--input_path", str(out) + ".deepspeed", "--output_model_path", str(tmp_path / "w.bin"),
            "--config_path", "none"]


@needs_deepspeed
@pytest.mark.parametrize("stage", [2, 3])
def test_consolidation_never_runs_code_from_any_file_of_a_deepspeed_checkpoint(stage, deepspeed_runs, tmp_path,
                                                                               capsys):
    run = deepspeed_runs(stage)
    clean = deepspeed_copy(run, tmp_path / "clean")
    consolidate.main(consolidate_argv(clean, tmp_path / "clean"))     # the allow-list reads a real checkpoint
    assert read_weights(str(tmp_path / "clean" / "w.bin"))
    capsys.readouterr()
    planted_files = sorted(os.listdir(str(clean) + ".deepspeed/step2"))
    assert [f for f in planted_files if f.endswith(".pt")] == planted_files and len(planted_files) >= 2
    for i, planted in enumerate(planted_files):
        case = tmp_path / f"case{i}"
        out = deepspeed_copy(run, case)
        marker = case / "marker"
        planted_path = str(out) + ".deepspeed/step2/" + planted
        before = plant(planted_path, marker)
        one_error(capsys, lambda: consolidate.main(consolidate_argv(out, case)), planted, "pickled Python objects")
        assert not marker.exists() and not (case / "w.bin").exists(), planted
        assert open(planted_path, "rb").read() == before


DEEPSPEED_FILES = ["mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt"]   # ZeRO-2, 1 rank


@needs_deepspeed
@pytest.mark.parametrize("planted", DEEPSPEED_FILES)
def test_deepspeed_resume_never_runs_code(planted, deepspeed_run, tiny_corpus, dataset, tmp_path):
    out = deepspeed_copy(deepspeed_run, tmp_path)
    marker = tmp_path / "marker"
    planted_path = str(out) + ".deepspeed/step2/" + planted
    before = plant(planted_path, marker)
    proc = launch(pretrain_argv(tiny_corpus, dataset, out, "--deepspeed", "--deepspeed_config",
                                deepspeed_run[1], "--resume"))
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors and planted in errors[0] and "pickled Python objects" in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert not marker.exists()
    assert open(planted_path, "rb").read() == before
    assert not glob.glob(str(out) + "-*")          # nothing was written by the refused run

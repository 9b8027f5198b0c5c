"""The distributed engines, each launched as 2 CPU processes with torchrun on a tiny BERT.

Every distributed run uses --batch_size 2 --accumulation_steps 2 on 2 processes; the reference is
one local process with --batch_size 2 --accumulation_steps 4.  Both take the same 8 instances per
step (the sampler gives rank r of global batch b the slice [b*4 + 2r, b*4 + 2r + 2)), with the
same counter-based masks, and both average 4 equally weighted micro-batch means — the same
arithmetic, so the losses agree to float32 rounding.  (One process with --batch_size 8 averages
over all masked tokens of the 8 instances at once, which weights instances slightly differently:
its losses differ by ~5e-4 relative, a different objective rather than an error.)  Dropout is 0
for the comparisons, since each process draws its own dropout masks.

DeepSpeed runs use fp32 configs (ZeRO stage only), so they compare with the fp32 local run.
Resume exactness: a 6-step run checkpoints at steps 3 and 6; its step-3 checkpoint (copied to a
fresh directory with the first 3 metric lines) is resumed and must reproduce steps 4-6 exactly.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from uer.cli.preprocess import main as preprocess_main
from uer.cli.pretrain import main as pretrain_main
from uer.config import load_config
from uer.models import build_model
from uer.models.weights import load_weights

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None
needs_deepspeed = pytest.mark.skipif(not HAS_DEEPSPEED, reason="DeepSpeed is not installed "
                                     "(pip install -e .[dev] or uer[deepspeed])")

STEPS = 6
LOSS_RTOL = 1e-5      # measured: identical to the printed 7 digits (max |rel diff| < 1e-7)
WEIGHT_ATOL = 1e-6    # measured: max |diff| of the final weights <= 6e-8
# ZeRO-3 with every parameter partitioned (built under zero.Init) reduce-scatters gradients in a
# different order: the step-1 loss is bit-identical (same initial weights), step-1 grad norms differ
# by 1e-7 relative, and Adam carries that to <= 3e-6 in the weights after 6 steps.
WEIGHT_ATOL_PARTITIONED = 1e-5
LAUNCH_TIMEOUT = 600  # the first DeepSpeed launch compiles a small communication op (~1 min)


@pytest.fixture(scope="module")
def dataset(tiny_corpus, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("dist") / "dataset")
    preprocess_main(["--corpus_path", str(tiny_corpus / "corpus.txt"), "--vocab_path", str(tiny_corpus / "vocab.txt"),
                     "--dataset_path", path, "--seq_length", "48", "--data_processor", "bert"])
    return path


def flags(tiny_corpus, dataset, out, *extra, dropout="0"):
    return ["--dataset_path", dataset, "--vocab_path", str(tiny_corpus / "vocab.txt"),
            "--config_path", str(tiny_corpus / "tiny_bert.json"), "--output_model_path", str(out),
            "--total_steps", str(STEPS), "--report_steps", "1", "--save_checkpoint_steps", "3",
            "--learning_rate", "1e-3", "--seed", "11", "--num_workers", "0", "--dropout", dropout,
            "--batch_size", "2", *extra]


def launch(args, nproc=2, script="pretrain.py"):
    """torchrun; a rank that fails makes torchrun stop the others and exit non-zero (and the
    timeout catches a hang)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           os.path.join(ROOT, script), *map(str, args)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def curve(prefix):
    with open(str(prefix) + ".metrics.jsonl") as f:
        return [(r["step"], r["loss"], r["lr"], r["grad_norm"]) for r in map(json.loads, f)]


def weights(path):
    return torch.load(str(path), map_location="cpu", weights_only=True)


def assert_same_training(run, reference, weight_atol=WEIGHT_ATOL):
    a, b = curve(run), curve(reference)
    assert [s for s, *_ in a] == list(range(1, STEPS + 1)) == [s for s, *_ in b]
    for (step, loss, lr, norm), (_, loss_ref, lr_ref, norm_ref) in zip(a, b):
        assert loss == pytest.approx(loss_ref, rel=LOSS_RTOL), (step, loss, loss_ref)
        assert norm == pytest.approx(norm_ref, rel=LOSS_RTOL), (step, norm, norm_ref)
        assert lr == pytest.approx(lr_ref, rel=1e-12), (step, lr, lr_ref)
    assert a[-1][1] < a[0][1]
    got, want = weights(run), weights(reference)
    assert set(got) == set(want)
    assert all(got[k].dtype == torch.float32 for k in got)
    diff = max((got[k] - want[k]).abs().max().item() for k in want)
    assert diff <= weight_atol, diff


def copy_first_half(straight, resumed_dir, files):
    """A run interrupted after step 3: its step-3 checkpoint and its first 3 metric lines."""
    os.makedirs(resumed_dir)
    for name in files:
        source = os.path.join(os.path.dirname(straight), name)
        (shutil.copytree if os.path.isdir(source) else shutil.copy)(source, os.path.join(resumed_dir, name))
    with open(str(straight) + ".metrics.jsonl") as f:
        lines = f.readlines()[:3]
    with open(os.path.join(resumed_dir, "m.bin.metrics.jsonl"), "w") as f:
        f.writelines(lines)
    return os.path.join(resumed_dir, "m.bin")


def assert_resumed_exactly(resumed, straight):
    assert curve(resumed) == curve(straight)                     # bit-identical steps 4-6
    got, want = weights(resumed), weights(straight)
    assert all(torch.equal(got[k], want[k]) for k in want)


@pytest.fixture(scope="module")
def reference(tiny_corpus, dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "m.bin"
    pretrain_main(flags(tiny_corpus, dataset, out, "--accumulation_steps", "4"))
    return out


@pytest.fixture(scope="module")
def runs(tiny_corpus, dataset, tmp_path_factory):
    """Distributed runs by name, launched once and shared by the comparison and resume tests."""
    done = {}

    def run(name, *extra, dropout="0"):
        if name not in done:
            out = tmp_path_factory.mktemp(name) / "m.bin"
            proc = launch(flags(tiny_corpus, dataset, out, "--accumulation_steps", "2", *extra, dropout=dropout))
            (tmp_path_factory.getbasetemp() / f"{name}.log").write_text(proc.stdout + proc.stderr)
            done[name] = out
        return done[name]
    return run


def zero_config(tmp_path, stage):
    path = tmp_path / f"zero{stage}_fp32.json"       # no bf16/fp16 section: fp32, like the reference
    zero = {"stage": stage}
    if stage == 3:
        # DeepSpeed keeps parameters under 10^5 elements whole on every rank by default, which would
        # be every parameter of a tiny model: 0 makes ZeRO-3 (and zero.Init) really partition them.
        zero["stage3_param_persistence_threshold"] = 0
    path.write_text(json.dumps({"zero_optimization": zero}))
    return path


# --------------------------------------------------------------------------------------- DDP

def test_ddp_matches_one_process(runs, reference):
    out = runs("ddp", "--engine", "ddp")
    assert_same_training(out, reference)
    assert os.path.isfile(str(out) + "-3") and os.path.isfile(str(out) + "-6.state.pt")
    state = torch.load(str(out) + "-6.state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng_per_rank"]) == 2


def test_ddp_resume_continues_exactly(runs, tiny_corpus, dataset, tmp_path):
    straight = runs("ddp", "--engine", "ddp")
    resumed = copy_first_half(straight, str(tmp_path / "resumed"), ["m.bin-3", "m.bin-3.state.pt"])
    launch(flags(tiny_corpus, dataset, resumed, "--accumulation_steps", "2", "--engine", "ddp", "--resume"))
    assert_resumed_exactly(resumed, straight)


# --------------------------------------------------------------------------------- DeepSpeed

@needs_deepspeed
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_zero_matches_one_process(stage, runs, reference, tmp_path_factory, tiny_corpus):
    config = zero_config(tmp_path_factory.mktemp("cfg"), stage)
    out = runs(f"zero{stage}", "--deepspeed", "--deepspeed_config", config)
    # The final weights were consolidated from the last ZeRO checkpoint (fp32 master weights):
    # they equal the local run's, and load strictly into a freshly built model, as finetune does.
    assert_same_training(out, reference, WEIGHT_ATOL_PARTITIONED if stage == 3 else WEIGHT_ATOL)
    if stage == 3:    # built partitioned under zero.Init, initialised to the same weights
        assert curve(out)[0][1] == curve(reference)[0][1]
        log = (tmp_path_factory.getbasetemp() / "zero3.log").read_text()
        assert "parameters partitioned across 2 processes at construction" in log
    checkpoints = str(out) + ".deepspeed"
    assert sorted(d for d in os.listdir(checkpoints) if d.startswith("step")) == ["step3", "step6"]
    assert open(os.path.join(checkpoints, "latest")).read().strip() == "step6"
    model = build_model(load_config(str(out) + ".config.json"))
    load_weights(model, str(out))
    if stage == 3:   # scripts/consolidate_checkpoint.py, offline, on the same checkpoint: the same file
        from uer.cli.consolidate import main as consolidate_main
        assert consolidate_main(["--input_path", checkpoints + "/step6"]) == str(out) + "-6"
        got, want = weights(str(out) + "-6"), weights(out)
        assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)


@needs_deepspeed
def test_zero2_resume_continues_exactly_with_dropout(runs, tiny_corpus, dataset, tmp_path):
    """Dropout on: every rank's RNG state is checkpointed, so each rank continues its own stream."""
    config = zero_config(tmp_path, 2)
    straight = runs("zero2_dropout", "--deepspeed", "--deepspeed_config", config, dropout="0.1")
    resumed = copy_first_half(straight, str(tmp_path / "resumed"), [])
    os.makedirs(resumed + ".deepspeed")
    shutil.copytree(str(straight) + ".deepspeed/step3", resumed + ".deepspeed/step3")
    with open(resumed + ".deepspeed/latest", "w") as f:
        f.write("step3")
    launch(flags(tiny_corpus, dataset, resumed, "--accumulation_steps", "2", "--deepspeed", "--deepspeed_config",
                 config, "--resume", dropout="0.1"))
    assert_resumed_exactly(resumed, straight)


@needs_deepspeed
def test_zero3_resume_continues_exactly(runs, tiny_corpus, dataset, tmp_path, tmp_path_factory):
    config = zero_config(tmp_path, 3)
    straight = runs("zero3", "--deepspeed", "--deepspeed_config", zero_config(tmp_path_factory.mktemp("cfg"), 3))
    resumed = copy_first_half(straight, str(tmp_path / "resumed"), [])
    shutil.copytree(str(straight) + ".deepspeed/step3", resumed + ".deepspeed/step3")
    launch(flags(tiny_corpus, dataset, resumed, "--accumulation_steps", "2", "--deepspeed", "--deepspeed_config",
                 config, "--resume", resumed + ".deepspeed/step3"))
    assert_resumed_exactly(resumed, straight)


@needs_deepspeed
def test_zero3_starts_from_a_pretrained_checkpoint(reference, tiny_corpus, dataset, tmp_path):
    """--pretrained_model_path under ZeRO-3: rank 0 reads the file and each module's parameters are
    scattered into the partitions; the run continues exactly like one process loading the file."""
    start = ["--pretrained_model_path", str(reference), "--total_steps", "2", "--save_checkpoint_steps", "2"]
    local = tmp_path / "local" / "m.bin"
    pretrain_main(flags(tiny_corpus, dataset, local, "--accumulation_steps", "4", *start))
    zero3 = tmp_path / "zero3" / "m.bin"
    launch(flags(tiny_corpus, dataset, zero3, "--accumulation_steps", "2", "--deepspeed", "--deepspeed_config",
                 zero_config(tmp_path, 3), *start))
    got, want = curve(zero3), curve(local)
    assert got[0][1] == want[0][1]                         # the same loaded weights, bit for bit
    assert got[1][1] == pytest.approx(want[1][1], rel=LOSS_RTOL)
    assert want[0][1] < curve(reference)[0][1] - 0.1       # it did start from the trained weights


ELECTRA_GDES = {"pretrainer": "electra", "target": ["mlm", "rtd"], "data_processor": "mlm",
                "masking": {"mask_prob": 0.15, "replace_mask": 0.85, "replace_random": 0.0},
                "rtd": {"generator": "joint", "generator_size_multiplier": 0.5, "embedding_sharing": "gdes"}}


@needs_deepspeed
def test_gdes_under_zero3_matches_ddp(tiny_corpus, tmp_path):
    """GDES reads the generator's (partitioned) tables from the discriminator's embedding; under
    ZeRO-3 the training must be the same as under DDP (the same per-rank generator samples)."""
    from tests.conftest import TINY_BERT
    mlm_dataset = str(tmp_path / "mlm_dataset")
    preprocess_main(["--corpus_path", str(tiny_corpus / "corpus.txt"), "--vocab_path", str(tiny_corpus / "vocab.txt"),
                     "--dataset_path", mlm_dataset, "--seq_length", "48", "--data_processor", "mlm"])
    config = tmp_path / "electra_gdes.json"
    config.write_text(json.dumps({**TINY_BERT, **ELECTRA_GDES}))
    outs = {}
    for name, engine in (("ddp", ["--engine", "ddp"]),
                         ("zero3", ["--deepspeed", "--deepspeed_config", zero_config(tmp_path, 3)])):
        outs[name] = tmp_path / name / "m.bin"
        args = flags(tiny_corpus, mlm_dataset, outs[name], "--accumulation_steps", "2", "--config_path", config,
                     *engine)
        launch(args)
    with open(str(outs["zero3"]) + ".metrics.jsonl") as f:
        z3 = [json.loads(line) for line in f]
    with open(str(outs["ddp"]) + ".metrics.jsonl") as f:
        ddp = [json.loads(line) for line in f]
    for a, b in zip(z3, ddp):
        for key in ("loss", "mlm_loss", "rtd_loss", "replaced_frac"):
            assert a[key] == pytest.approx(b[key], rel=1e-4), (a["step"], key)
    got, want = weights(outs["zero3"]), weights(outs["ddp"])
    assert set(got) == set(want) and "discriminator.embedding.word.delta" in got
    assert max((got[k] - want[k]).abs().max().item() for k in want) <= WEIGHT_ATOL_PARTITIONED
    assert got["discriminator.embedding.word.delta"].abs().max() > 0       # the residual trained


@needs_deepspeed
def test_fast_electra_frozen_generator_under_zero3_matches_ddp(reference, tiny_corpus, tmp_path):
    """The frozen generator is built whole even under zero.Init (it never enters the engine) and
    samples the same tokens as under DDP; only the discriminator is partitioned and trained."""
    from tests.conftest import TINY_BERT
    mlm_dataset = str(tmp_path / "mlm_dataset")
    preprocess_main(["--corpus_path", str(tiny_corpus / "corpus.txt"), "--vocab_path", str(tiny_corpus / "vocab.txt"),
                     "--dataset_path", mlm_dataset, "--seq_length", "48", "--data_processor", "mlm"])
    config = tmp_path / "fast_electra.json"
    rtd = {"generator": "frozen", "generator_checkpoint": str(reference), "embedding_sharing": "none",
           "temperature_schedule": "linear", "temperature_start": 2.0, "temperature_end": 1.0,
           "temperature_steps": STEPS}
    config.write_text(json.dumps({**TINY_BERT, **ELECTRA_GDES, "rtd": rtd}))
    outs = {}
    for name, engine in (("ddp", ["--engine", "ddp"]),
                         ("zero3", ["--deepspeed", "--deepspeed_config", zero_config(tmp_path, 3)])):
        outs[name] = tmp_path / name / "m.bin"
        launch(flags(tiny_corpus, mlm_dataset, outs[name], "--accumulation_steps", "2", "--config_path", config,
                     *engine))
    records = {}
    for name, out in outs.items():
        with open(str(out) + ".metrics.jsonl") as f:
            records[name] = [json.loads(line) for line in f]
    for a, b in zip(records["zero3"], records["ddp"]):
        for key in ("loss", "rtd_loss", "replaced_frac", "gen_temperature"):
            assert a[key] == pytest.approx(b[key], rel=1e-4), (a["step"], key)
    assert records["zero3"][0]["gen_temperature"] == pytest.approx(2.0)
    got = weights(outs["zero3"])
    assert not any(k.startswith("generator.") for k in got)            # the frozen generator is not saved


# ------------------------------------------------------------------------- launchers, nodes

def _free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@needs_deepspeed
def test_deepspeed_launcher_and_two_node_torchrun_match_the_single_node_run(runs, tiny_corpus, dataset, tmp_path):
    """The same ZeRO-2 run launched three ways gives the same training: torchrun on one node (the
    shared fixture), the ``deepspeed`` launcher, and torchrun as two "nodes" of one process each
    (two launcher agents meeting at a master address, as on two machines: RANK 0/1, LOCAL_RANK 0
    on both).  A hostfile launch needs passwordless ssh between the machines, which this test
    machine does not have; it differs from this only in how the agents are started."""
    config = zero_config(tmp_path, 2)
    single = runs("zero2", "--deepspeed", "--deepspeed_config", config)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ds_out = tmp_path / "ds_launcher" / "m.bin"
    proc = subprocess.run(["deepspeed", "--num_gpus", "2", "--master_port", str(_free_port()),
                           os.path.join(ROOT, "pretrain.py"), "--deepspeed", "--deepspeed_config", str(config),
                           *map(str, flags(tiny_corpus, dataset, ds_out, "--accumulation_steps", "2"))],
                          cwd=ROOT, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    nodes_out = tmp_path / "two_nodes" / "m.bin"
    port = _free_port()
    agents = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank",
                                str(node), "--nproc_per_node", "1", "--master_addr", "127.0.0.1",
                                "--master_port", str(port), os.path.join(ROOT, "pretrain.py"), "--deepspeed",
                                "--deepspeed_config", str(config),
                                *map(str, flags(tiny_corpus, dataset, nodes_out, "--accumulation_steps", "2"))],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
              for node in (0, 1)]
    outputs = [agent.communicate(timeout=LAUNCH_TIMEOUT) for agent in agents]
    assert all(agent.returncode == 0 for agent in agents), [err[-2000:] for _, err in outputs]
    for out in (ds_out, nodes_out):
        assert curve(out) == curve(single)       # the same processes doing the same arithmetic
        assert torch.equal(weights(out)["embedding.word.embedding.weight"],
                           weights(single)["embedding.word.embedding.weight"])


# ------------------------------------------------------------------------------ fine-tuning

@pytest.fixture(scope="module")
def finetune_reference(tiny_corpus, reference, tmp_path_factory):
    """One process fine-tuning the pretrained tiny BERT: batch 4 x accumulation 2 = 8 per step."""
    from uer.cli.classifier import finetune_main
    root = tmp_path_factory.mktemp("finetune")
    with open(tiny_corpus / "train.tsv") as f:
        (root / "train.tsv").write_text("".join(f.readlines()[:97]))     # header + 96 rows: 12 steps
    out = root / "local" / "classifier.bin"
    args = finetune_flags(tiny_corpus, reference, root, out)
    results = finetune_main(args + ["--batch_size", "4"])
    return root, out, results


def finetune_flags(tiny_corpus, pretrained, root, out):
    return ["--pretrained_model_path", str(pretrained), "--vocab_path", str(tiny_corpus / "vocab.txt"),
            "--train_path", str(root / "train.tsv"), "--dev_path", str(tiny_corpus / "dev.tsv"),
            "--test_path", str(tiny_corpus / "test.tsv"), "--output_model_path", str(out),
            "--epochs_num", "2", "--accumulation_steps", "2", "--learning_rate", "1e-3", "--seq_length", "32",
            "--dropout", "0", "--report_steps", "1", "--seed", "5"]


@needs_deepspeed
@pytest.mark.parametrize("engine", ["ddp", "zero2", "zero3"])
def test_finetune_matches_one_process(engine, finetune_reference, tiny_corpus, reference, tmp_path):
    """finetune/run_classifier.py on 2 processes (batch 2 x accumulation 2 x 2 ranks = 8 per step):
    the same losses, dev/test predictions and saved classifier as one process; under ZeRO-3 the
    classifier is built partitioned and the best model is gathered for saving."""
    root, local_out, local_results = finetune_reference
    out = tmp_path / "classifier.bin"
    extra = ["--engine", "ddp"] if engine == "ddp" else \
        ["--deepspeed", "--deepspeed_config", zero_config(tmp_path, int(engine[-1]))]
    proc = launch(finetune_flags(tiny_corpus, reference, root, out) + ["--batch_size", "2", *extra],
                  script="finetune/run_classifier.py")
    got, want = curve(out), curve(local_out)
    assert [s for s, *_ in got] == list(range(1, 25)) == [s for s, *_ in want]
    for (step, loss, lr, norm), (_, loss_ref, lr_ref, norm_ref) in zip(got, want):
        assert loss == pytest.approx(loss_ref, rel=LOSS_RTOL), (step, loss, loss_ref)
        assert lr == pytest.approx(lr_ref, rel=1e-12)
    assert f"dev accuracy: {local_results['dev']['accuracy']:.4f}" in proc.stdout
    assert f"test accuracy: {local_results['test']['accuracy']:.4f}" in proc.stdout
    a, b = weights(out), weights(local_out)
    assert set(a) == set(b)
    assert max((a[k] - b[k]).abs().max().item() for k in b) <= WEIGHT_ATOL_PARTITIONED
    assert os.path.isfile(str(out) + ".task.json") and os.path.isfile(str(out) + ".config.json")


# ---------------------------------------------------------------------------------- failures

@needs_deepspeed
def test_a_config_deepspeed_refuses_on_this_hardware_is_one_error_line(tiny_corpus, dataset, tmp_path):
    """fp16 is not available on DeepSpeed's CPU accelerator: a one-line error, no traceback."""
    config = tmp_path / "fp16.json"
    config.write_text(json.dumps({"fp16": {"enabled": True}, "zero_optimization": {"stage": 2}}))
    cmd = [sys.executable, os.path.join(ROOT, "pretrain.py"), "--deepspeed", "--deepspeed_config", str(config),
           *flags(tiny_corpus, dataset, tmp_path / "m.bin")[:-2], "--batch_size", "2"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)
    if proc.returncode == 0:
        pytest.skip("this machine's DeepSpeed accelerator supports fp16")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: DeepSpeed refused the config" in proc.stderr and "Traceback" not in proc.stderr


DYING_RANK = """
import os, sys
sys.path.insert(0, {root!r})
from uer.training.distributed import init_process_group, reduce_mean
init_process_group("ddp", "cpu")
if os.environ["RANK"] == "1":
    raise SystemExit("rank 1 dies before the collective")
reduce_mean({{"loss": 1.0}})      # rank 0 waits here for a rank that is gone
"""


def test_a_dying_rank_fails_the_launch_instead_of_hanging(tmp_path):
    script = tmp_path / "dying_rank.py"
    script.write_text(DYING_RANK.format(root=ROOT))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "rank 1 dies" in proc.stderr

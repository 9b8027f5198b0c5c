"""LoRA pretraining end to end: adapter-only checkpoints, exact resume, and the same training under
DDP and DeepSpeed ZeRO-2/3 (2 CPU processes under torchrun) as in one process.

As in test_distributed.py: distributed runs use --batch_size 2 --accumulation_steps 2 on 2 processes,
the reference one process with --batch_size 2 --accumulation_steps 4 (the same 8 instances and the
same arithmetic per step), dropout 0.  Every run starts from the same base checkpoint, so the
frozen weights are the same everywhere and only the adapters train.
"""

import importlib.util
import json
import os
import shutil

import pytest
import torch

from tests.integration.test_distributed import launch
from uer.cli.preprocess import main as preprocess_main
from uer.cli.pretrain import main as pretrain_main
from uer.models.lora import load_lora_config

HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None
needs_deepspeed = pytest.mark.skipif(not HAS_DEEPSPEED, reason="DeepSpeed is not installed")

STEPS = 4
LOSS_RTOL = 1e-5          # as test_distributed.py
WEIGHT_ATOL = 1e-6
WEIGHT_ATOL_PARTITIONED = 1e-5
LORA = ["--use_lora", "--lora_r", "4", "--lora_alpha", "8",
        "--lora_targets", "attention.query,attention.key,attention.value,attention.output"]


@pytest.fixture(scope="module")
def dataset(tiny_corpus, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("lora_ds") / "dataset")
    preprocess_main(["--corpus_path", str(tiny_corpus / "corpus.txt"), "--vocab_path", str(tiny_corpus / "vocab.txt"),
                     "--dataset_path", path, "--seq_length", "48", "--data_processor", "bert"])
    return path


def flags(tiny_corpus, dataset, out, base, *extra, steps=STEPS):
    return ["--dataset_path", dataset, "--vocab_path", str(tiny_corpus / "vocab.txt"),
            "--config_path", str(tiny_corpus / "tiny_bert.json"), "--output_model_path", str(out),
            "--pretrained_model_path", str(base), "--total_steps", str(steps), "--report_steps", "1",
            "--save_checkpoint_steps", "2", "--learning_rate", "3e-3", "--seed", "11", "--num_workers", "0",
            "--dropout", "0", "--batch_size", "2", *LORA, *extra]


@pytest.fixture(scope="module")
def base(tiny_corpus, dataset, tmp_path_factory):
    """A 'pretrained' base model: 3 ordinary steps from the seed."""
    out = tmp_path_factory.mktemp("lora_base") / "base.bin"
    pretrain_main(["--dataset_path", dataset, "--vocab_path", str(tiny_corpus / "vocab.txt"),
                   "--config_path", str(tiny_corpus / "tiny_bert.json"), "--output_model_path", str(out),
                   "--total_steps", "3", "--save_checkpoint_steps", "3", "--report_steps", "3", "--batch_size", "8",
                   "--learning_rate", "1e-3", "--seed", "3", "--num_workers", "0"])
    return out


@pytest.fixture(scope="module")
def reference(tiny_corpus, dataset, base, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora_local") / "m.bin"
    pretrain_main(flags(tiny_corpus, dataset, out, base, "--accumulation_steps", "4"))
    return out


def curve(prefix):
    with open(str(prefix) + ".metrics.jsonl") as f:
        return [(r["step"], r["loss"], r["lr"], r["grad_norm"]) for r in map(json.loads, f)]


def weights(path):
    return torch.load(str(path), map_location="cpu", weights_only=True)


def adapter_keys(state):
    return all(k.rsplit(".", 1)[-1] in ("lora_A", "lora_B") for k in state)


def test_lora_pretraining_trains_and_saves_only_the_adapters(reference, base, tiny_corpus, dataset, tmp_path):
    final, step2 = weights(reference), weights(str(reference) + "-2")
    assert len(final) == 2 * 4 * 2 and adapter_keys(final) and set(step2) == set(final)
    assert final["encoder.layers.0.attention.query.lora_A"].shape == (4, 32)
    assert all(final[k].abs().max() > 0 for k in final if k.endswith("lora_B"))      # B trained away from 0
    assert os.path.getsize(reference) * 5 < os.path.getsize(base)
    cfg, record = load_lora_config(str(reference) + ".lora.json")
    assert (cfg.r, cfg.alpha, len(cfg.targets)) == (4, 8.0, 4) and record["base_model"] == str(base)
    run = json.load(open(str(reference) + ".run.json"))
    assert run["args"]["use_lora"] is True
    # B starts at 0: the first step's loss is the base model's, as a run without LoRA computes it.
    plain = tmp_path / "plain" / "m.bin"
    args = flags(tiny_corpus, dataset, plain, base, "--accumulation_steps", "4", steps=1)
    i = args.index("--use_lora")
    pretrain_main(args[:i] + args[i + len(LORA):])
    assert curve(plain)[0][1] == curve(reference)[0][1]
    assert curve(reference)[1][1] != curve(plain)[0][1]


def copy_first_half(straight, resumed_dir):
    os.makedirs(resumed_dir)
    folder = os.path.dirname(str(straight))
    for name in ("m.bin-2", "m.bin-2.state.pt"):
        shutil.copy(os.path.join(folder, name), os.path.join(resumed_dir, name))
    with open(str(straight) + ".metrics.jsonl") as f:
        lines = f.readlines()[:2]
    with open(os.path.join(resumed_dir, "m.bin.metrics.jsonl"), "w") as f:
        f.writelines(lines)
    return os.path.join(resumed_dir, "m.bin")


def test_lora_resume_continues_exactly(reference, tiny_corpus, dataset, base, tmp_path, capsys):
    resumed = copy_first_half(reference, str(tmp_path / "resumed"))
    pretrain_main(flags(tiny_corpus, dataset, resumed, base, "--accumulation_steps", "4", "--resume"))
    assert curve(resumed) == curve(reference)                # bit-identical steps 3-4
    got, want = weights(resumed), weights(reference)
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    # The adapters are only half a model: resuming on another base, or with other settings, is refused.
    capsys.readouterr()
    other_base = tmp_path / "other_base.bin"
    shutil.copy(base, other_base)
    with pytest.raises(SystemExit):
        pretrain_main(flags(tiny_corpus, dataset, resumed, other_base, "--accumulation_steps", "4", "--resume"))
    assert "were trained on --pretrained_model_path" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pretrain_main(flags(tiny_corpus, dataset, resumed, base, "--accumulation_steps", "4", "--resume",
                            "--lora_r", "2"))
    assert "resume with the same --lora_* flags" in capsys.readouterr().err


def test_dylora_resume_continues_exactly_and_the_adapter_continues_a_run(tiny_corpus, dataset, base, tmp_path):
    """DyLoRA draws its rank from (seed, step): a resumed run draws the same ranks."""
    dylora = ["--dylora", "--lora_min_r", "1", "--accumulation_steps", "2", "--batch_size", "4"]
    straight = tmp_path / "straight" / "m.bin"
    pretrain_main(flags(tiny_corpus, dataset, straight, base, *dylora))
    resumed = copy_first_half(straight, str(tmp_path / "resumed"))
    pretrain_main(flags(tiny_corpus, dataset, resumed, base, *dylora, "--resume"))
    assert curve(resumed) == curve(straight)
    # --lora_pretrained_model_path: a new run starts from the trained adapter (lower first loss).
    more = tmp_path / "more" / "m.bin"
    pretrain_main(flags(tiny_corpus, dataset, more, base, *dylora, "--lora_pretrained_model_path", str(straight),
                        steps=1))
    assert curve(more)[0][1] < curve(straight)[0][1]


def assert_same_training(run, reference, weight_atol=WEIGHT_ATOL):
    a, b = curve(run), curve(reference)
    assert [s for s, *_ in a] == list(range(1, STEPS + 1)) == [s for s, *_ in b]
    for (step, loss, lr, norm), (_, loss_ref, lr_ref, norm_ref) in zip(a, b):
        assert loss == pytest.approx(loss_ref, rel=LOSS_RTOL), (step, loss, loss_ref)
        assert norm == pytest.approx(norm_ref, rel=LOSS_RTOL), (step, norm, norm_ref)
        assert lr == pytest.approx(lr_ref, rel=1e-12)
    got, want = weights(run), weights(reference)
    assert set(got) == set(want) and adapter_keys(got)
    diff = max((got[k] - want[k]).abs().max().item() for k in want)
    assert diff <= weight_atol, diff


def test_lora_under_ddp_matches_one_process(reference, tiny_corpus, dataset, base, tmp_path):
    out = tmp_path / "ddp" / "m.bin"
    launch(flags(tiny_corpus, dataset, out, base, "--accumulation_steps", "2", "--engine", "ddp"))
    assert_same_training(out, reference)
    assert adapter_keys(weights(str(out) + "-2"))


def zero_config(tmp_path, stage):
    path = tmp_path / f"zero{stage}_fp32.json"
    zero = {"stage": stage}
    if stage == 3:
        zero["stage3_param_persistence_threshold"] = 0      # really partition the tiny parameters
    path.write_text(json.dumps({"zero_optimization": zero}))
    return path


@needs_deepspeed
@pytest.mark.parametrize("stage", [2, 3])
def test_lora_under_zero_matches_one_process(stage, reference, tiny_corpus, dataset, base, tmp_path):
    out = tmp_path / f"zero{stage}" / "m.bin"
    launch(flags(tiny_corpus, dataset, out, base, "--accumulation_steps", "2", "--deepspeed",
                 "--deepspeed_config", zero_config(tmp_path, stage)))
    assert_same_training(out, reference, WEIGHT_ATOL_PARTITIONED if stage == 3 else WEIGHT_ATOL)


def test_finetuning_starts_from_a_pretrained_adapter(reference, tiny_corpus, base, tmp_path, capsys):
    """TencentPretrain's fine-tuning --lora_pretrained_model_path: the adapter of a LoRA pretraining run
    is loaded over the base before fine-tuning (the new head aside); other LoRA settings are refused."""
    from uer.cli.tasks import finetune_main
    from uer.models.weights import read_weights

    vocab_words = [w for w in open(tiny_corpus / "vocab.txt", encoding="utf-8").read().split() if w.isalpha()][:8]
    rows = "".join(f"{i % 2}\t{vocab_words[i % 8]} {vocab_words[(i * 3) % 8]}\n" for i in range(16))
    train = tmp_path / "train.tsv"
    train.write_text("label\ttext_a\n" + rows, encoding="utf-8")
    common = ["--pretrained_model_path", str(base), "--vocab_path", str(tiny_corpus / "vocab.txt"), "--config_path",
              str(tiny_corpus / "tiny_bert.json"), "--train_path", str(train), "--dev_path", str(train),
              "--epochs_num", "1", "--batch_size", "8", "--seq_length", "16", "--learning_rate", "0", *LORA]
    out = tmp_path / "cls.bin"
    finetune_main("classification")(common + ["--lora_pretrained_model_path", str(reference),
                                              "--output_model_path", str(out)])
    adapter = read_weights(str(reference))
    saved = read_weights(str(out) + ".lora.bin")       # lr 0: the fine-tuned adapter is the loaded one
    shared = [k for k in adapter if k in saved]
    assert shared and all(torch.equal(adapter[k], saved[k]) for k in shared)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        finetune_main("classification")(common[:-len(LORA)] + ["--use_lora", "--lora_r", "2", "--lora_targets",
                                                                  LORA[-1], "--lora_pretrained_model_path",
                                                                  str(reference), "--output_model_path",
                                                                  str(tmp_path / "other.bin")])
    assert str(reference) in capsys.readouterr().err


@needs_deepspeed
def test_lora_finetuning_under_zero3_matches_one_process(base, tiny_corpus, tmp_path):
    """--use_lora fine-tuning on a ZeRO-3 partitioned classifier (2 processes): the merged best model
    is built from the gathered adapters, and the test pass reloads the best adapter onto the
    partitioned model; losses, dev/test accuracy and the saved model match one process."""
    from tests.integration.test_distributed import finetune_flags, zero_config
    from uer.cli.classifier import finetune_main
    from uer.models.weights import read_weights
    root = tmp_path
    with open(tiny_corpus / "train.tsv") as f:
        (root / "train.tsv").write_text("".join(f.readlines()[:49]))     # header + 48 rows: 6 steps an epoch
    local = root / "local" / "cls.bin"
    results = finetune_main(finetune_flags(tiny_corpus, base, root, local) + ["--batch_size", "4", *LORA])
    out = root / "zero3" / "cls.bin"
    proc = launch(finetune_flags(tiny_corpus, base, root, out) + ["--batch_size", "2", *LORA, "--deepspeed",
                                                                   "--deepspeed_config", zero_config(tmp_path, 3)],
                  script="finetune/run_classifier.py")
    got, want = curve(out), curve(local)
    assert len(got) == len(want) == 12
    for (step, loss, *_), (_, loss_ref, *_) in zip(got, want):
        assert loss == pytest.approx(loss_ref, rel=LOSS_RTOL), (step, loss, loss_ref)
    assert f"dev accuracy: {results['dev']['accuracy']:.4f}" in proc.stdout
    assert f"test accuracy: {results['test']['accuracy']:.4f}" in proc.stdout
    a, b = read_weights(str(out)), read_weights(str(local))
    assert set(a) == set(b) and not adapter_keys(a)                # merged: plain task models
    assert max((a[k] - b[k]).abs().max().item() for k in b) <= WEIGHT_ATOL_PARTITIONED

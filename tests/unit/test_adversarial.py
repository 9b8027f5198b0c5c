"""FGM / PGD on the word embedding of a tiny classifier, checked against a manual computation."""

import copy
from argparse import Namespace

import pytest
import torch
from torch import nn

from uer.config import config_from_dict
from uer.errors import ConfigError
from uer.tasks.classification import Classifier
from uer.training.adversarial import (WORD_EMBEDDING, AdversarialConfig, Adversary, adversarial_step,
                                      select_parameters)

TINY = {"embedding": ["word", "pos", "seg"], "emb_size": 16, "hidden_size": 16, "feedforward_size": 32,
        "heads_num": 2, "layers_num": 1, "max_seq_length": 16, "vocab_size": 40, "labels_num": 3,
        "dropout": 0.0}


def setup(seed=0):
    torch.manual_seed(seed)
    model = Classifier(config_from_dict(dict(TINY)))
    src = torch.randint(5, 40, (4, 8))
    batch = {"src": src, "seg": torch.ones_like(src), "labels": torch.tensor([0, 1, 2, 1])}
    return model, batch


def loss_of(model, batch):
    return model(batch)["loss"]


def clean_backward(model, batch):
    model.zero_grad(set_to_none=True)
    loss_of(model, batch).backward()


def params_of(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def grads_of(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def recording_closure(model, batch, seen):
    """The loss closure, also recording every parameter as it is during each extra pass."""
    def closure():
        seen.append(params_of(model))
        return loss_of(model, batch)
    return closure


def grads_at(model, batch, embedding):
    """All gradients of the loss with the word embedding replaced: the manual reference."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        dict(other.named_parameters())[WORD_EMBEDDING].copy_(embedding)
    other.zero_grad(set_to_none=True)
    loss_of(other, batch).backward()
    return grads_of(other)


def test_default_parameter_is_the_word_embedding_of_the_classifier():
    model, _ = setup()
    assert [n for n, _ in select_parameters(model)] == [WORD_EMBEDDING]
    uer_py_like = [n for n, _ in select_parameters(model, "embedding")]
    assert uer_py_like == ["embedding.word.embedding.weight", "embedding.pos.embedding.weight",
                           "embedding.seg.embedding.weight", "embedding.norm.weight", "embedding.norm.bias"]
    wrapped = nn.Module()
    wrapped.module = model                      # DDP's naming: module.<name>
    assert [n for n, _ in select_parameters(wrapped)] == [WORD_EMBEDDING]
    with pytest.raises(ConfigError, match="embedding.word.embedding.weight"):
        select_parameters(model, "embedding.words")


def test_fgm_perturbs_only_the_embedding_by_epsilon_along_the_gradient_and_restores_it():
    model, batch = setup()
    clean_backward(model, batch)
    before, clean = params_of(model), grads_of(model)
    g = clean[WORD_EMBEDDING]
    seen = []
    eps = 0.5
    adv_loss = Adversary(model, AdversarialConfig("fgm", fgm_epsilon=eps)).train_step(
        recording_closure(model, batch, seen))
    assert len(seen) == 1 and adv_loss is not None
    during = seen[0]
    for name in before:
        if name != WORD_EMBEDDING:
            assert torch.equal(during[name], before[name]), name
    delta = during[WORD_EMBEDDING] - before[WORD_EMBEDDING]
    assert delta.norm().item() == pytest.approx(eps, rel=1e-4)
    assert torch.allclose(delta, eps * g / g.norm(), atol=1e-6)
    after = params_of(model)
    assert all(torch.equal(after[n], before[n]) for n in before)          # restored bit for bit
    # Final gradients: clean + the gradient at the perturbed point (manual computation).
    adv = grads_at(model, batch, before[WORD_EMBEDDING] + eps * g / g.norm())
    for name, grad in grads_of(model).items():
        assert torch.allclose(grad, clean[name] + adv[name], atol=1e-5), name
    assert not torch.allclose(grads_of(model)[WORD_EMBEDDING], clean[WORD_EMBEDDING])


def test_pgd_steps_stay_in_the_ball_and_match_a_manual_pgd():
    model, batch = setup(1)
    clean_backward(model, batch)
    before, clean = params_of(model), grads_of(model)
    k, eps, alpha = 4, 0.5, 0.3
    seen = []
    adversarial_step(model, lambda m, b: recording_closure(m, b, seen)(), batch,
                     AdversarialConfig("pgd", pgd_k=k, pgd_epsilon=eps, pgd_alpha=alpha))
    assert len(seen) == k
    E = before[WORD_EMBEDDING]
    # Manual PGD: step along the normalised gradient, project onto the ball, recompute the gradient there.
    delta, g, want_deltas = torch.zeros_like(E), clean[WORD_EMBEDDING], []
    for _ in range(k):
        delta = delta + alpha * g / g.norm()
        if delta.norm() > eps:
            delta = delta * (eps / delta.norm())
        want_deltas.append(delta)
        at = grads_at(model, batch, E + delta)
        g = at[WORD_EMBEDDING]
    norms = []
    for step, (during, want) in enumerate(zip(seen, want_deltas)):
        got = during[WORD_EMBEDDING] - E
        norms.append(got.norm().item())
        assert got.norm() <= eps * (1 + 1e-5), step
        assert torch.allclose(got, want, atol=1e-5), step
        assert all(torch.equal(during[n], before[n]) for n in before if n != WORD_EMBEDDING)
    assert norms[0] == pytest.approx(alpha, rel=1e-4)
    assert max(norms) == pytest.approx(eps, rel=1e-4)       # the projection was active
    after = params_of(model)
    assert all(torch.equal(after[n], before[n]) for n in before)
    # Final gradients: the clean ones plus those of the last adversarial pass only.
    for name, grad in grads_of(model).items():
        assert torch.allclose(grad, clean[name] + at[name], atol=1e-5), name


def test_pgd_with_one_step_equals_fgm_with_alpha():
    model, batch = setup(2)
    clean_backward(model, batch)
    Adversary(model, AdversarialConfig("pgd", pgd_k=1, pgd_epsilon=1.0, pgd_alpha=0.2)).train_step(
        lambda: loss_of(model, batch))
    pgd = grads_of(model)
    clean_backward(model, batch)
    Adversary(model, AdversarialConfig("fgm", fgm_epsilon=0.2)).train_step(lambda: loss_of(model, batch))
    fgm = grads_of(model)
    assert all(torch.allclose(pgd[n], fgm[n], atol=1e-6) for n in pgd)


def test_zero_gradient_skips_the_extra_pass_and_backward_hook_is_used():
    model, batch = setup()
    model.zero_grad(set_to_none=True)
    calls = []
    for adv_type in ("fgm", "pgd"):
        out = Adversary(model, AdversarialConfig(adv_type)).train_step(lambda: calls.append(1) or loss_of(model, batch))
        assert out is None
    assert calls == []
    clean_backward(model, batch)
    scaled = []
    Adversary(model, AdversarialConfig("fgm", fgm_epsilon=0.1)).train_step(
        lambda: loss_of(model, batch), backward=lambda loss: (scaled.append(loss.item()), (loss * 0.5).backward()))
    assert len(scaled) == 1


def test_weights_are_restored_when_the_closure_fails():
    model, batch = setup()
    clean_backward(model, batch)
    before = params_of(model)

    def boom():
        raise RuntimeError("out of memory")
    with pytest.raises(RuntimeError):
        Adversary(model, AdversarialConfig("fgm", fgm_epsilon=1.0)).train_step(boom)
    assert torch.equal(params_of(model)[WORD_EMBEDDING], before[WORD_EMBEDDING])


def test_config_defaults_flags_and_errors():
    c = AdversarialConfig()
    assert (c.adv_type, c.fgm_epsilon, c.pgd_k, c.pgd_epsilon, c.pgd_alpha) == ("fgm", 1e-6, 3, 1.0, 0.3)
    assert AdversarialConfig.from_args(Namespace(use_adv=False)) is None
    from_flags = AdversarialConfig.from_args(Namespace(use_adv=True, adv_type="pgd", pgd_k=5))
    assert from_flags.adv_type == "pgd" and from_flags.pgd_k == 5 and from_flags.pgd_alpha == 0.3
    with pytest.raises(ConfigError, match="--adv_type 'fgsm'"):
        AdversarialConfig("fgsm")
    with pytest.raises(ConfigError, match="--pgd_k 0"):
        AdversarialConfig("pgd", pgd_k=0)
    with pytest.raises(ConfigError, match="--fgm_epsilon"):
        AdversarialConfig(fgm_epsilon=0.0)


# ------------------------------------------------------------------------------------------------
# Wired into the one training loop (TrainerConfig.adversarial) and the fine-tuning flags (--use_adv)
# ------------------------------------------------------------------------------------------------

def train_tiny(adversarial=None, steps=3, accumulation=1):
    """A few Trainer steps of the tiny classifier on the local engine.  Returns the model, the number
    of forward passes per optimizer step, and per step (embedding at the step's first forward,
    embedding when the optimizer steps)."""
    import numpy as np
    from uer.data.sampler import BatchSampler, CollatedBatches
    from uer.tasks.classification import ClassificationCollator
    from uer.training.engine_factory import EngineFactory, OptimizerSettings
    from uer.training.trainer import Trainer, TrainerConfig

    model, _ = setup(3)
    rng = np.random.default_rng(0)
    examples = [{"src": rng.integers(5, 40, 8), "label": int(rng.integers(0, 3))} for _ in range(16)]
    engines = EngineFactory("local", torch.device("cpu"), 1,
                            OptimizerSettings(learning_rate=1e-2, warmup=0.0, accumulation_steps=accumulation))
    engine = engines.build(model, steps)
    forwards, at_forward, at_step = [0], [], []
    original_forward = model.forward

    def counting_forward(batch):
        if forwards[0] == 0 or len(at_forward) == len(at_step):
            at_forward.append(model.embedding.word.embedding.weight.detach().clone())
        forwards[0] += 1
        return original_forward(batch)
    model.forward = counting_forward
    engine.optimizer.register_step_pre_hook(
        lambda *_: at_step.append(model.embedding.word.embedding.weight.detach().clone()))
    trainer = Trainer(engine, CollatedBatches(examples, ClassificationCollator(0)),
                      BatchSampler(len(examples), 4, seed=1, drop_last=False),
                      TrainerConfig(total_steps=steps, accumulation_steps=accumulation, report_steps=1,
                                    adversarial=adversarial))
    last = trainer.train()
    return model, forwards[0] / steps, list(zip(at_forward, at_step)), last


@pytest.mark.parametrize("config,passes", [(AdversarialConfig("fgm", fgm_epsilon=1.0), 2),
                                           (AdversarialConfig("pgd", pgd_k=3, pgd_epsilon=1.0, pgd_alpha=0.5), 4)])
def test_trainer_runs_the_extra_passes_changes_the_update_and_restores_the_embedding(config, passes):
    plain, plain_passes, _, plain_last = train_tiny()
    adv, adv_passes, snapshots, last = train_tiny(config)
    assert plain_passes == 1 and adv_passes == passes
    assert "adv_loss" in last and "adv_loss" not in plain_last
    # The optimizer steps on the weights the step started from: the perturbation was undone exactly.
    assert len(snapshots) == 3 and all(torch.equal(start, stepped) for start, stepped in snapshots)
    differs = [n for n, p in adv.named_parameters()
               if not torch.equal(p, dict(plain.named_parameters())[n])]
    assert WORD_EMBEDDING in differs and len(differs) > 3       # the extra gradient changed the updates


def test_trainer_refuses_adversarial_training_it_cannot_do():
    with pytest.raises(ConfigError, match="--accumulation_steps 2"):
        train_tiny(AdversarialConfig(), steps=2, accumulation=2)
    from uer.training.engines.base import Engine
    from uer.training.trainer import Trainer, TrainerConfig

    class PartitionedEngine(Engine):        # stands in for DeepSpeed: not a LocalEngine
        model = nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="needs the local or DDP engine, not PartitionedEngine"):
        Trainer(PartitionedEngine(), None, None, TrainerConfig(total_steps=1, adversarial=AdversarialConfig()))


def finetune_flags(tmp_path):
    import json
    import random
    words = [f"w{i}" for i in range(20)]
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
    (tmp_path / "tiny.json").write_text(json.dumps(dict(TINY, vocab_size=25, labels_num=2)))
    rng = random.Random(0)
    rows = [" ".join(rng.choice(words) for _ in range(5)) for _ in range(16)]
    data = tmp_path / "train.tsv"
    data.write_text("label\ttext_a\n" + "\n".join(f"{int(r.split()[0][1:]) % 2}\t{r}" for r in rows) + "\n")
    return ["--vocab_path", str(tmp_path / "vocab.txt"), "--config_path", str(tmp_path / "tiny.json"),
            "--train_path", str(data), "--dev_path", str(data), "--output_model_path", str(tmp_path / "m.bin"),
            "--epochs_num", "1", "--batch_size", "8", "--seq_length", "16", "--report_steps", "1"]


def test_use_adv_flags_reach_the_trainer_of_every_task(tmp_path):
    import json
    from uer.cli.tasks import finetune
    flags = finetune_flags(tmp_path)
    finetune("classification", flags + ["--use_adv", "--adv_type", "pgd", "--pgd_k", "2"])
    records = [json.loads(line) for line in open(tmp_path / "m.bin.metrics.jsonl")]
    assert len(records) == 2 and all(r["adv_loss"] > 0 for r in records)
    finetune("regression", flags + ["--use_adv", "--fgm_epsilon", "0.5", "--output_model_path",
                                    str(tmp_path / "r.bin")])
    assert all("adv_loss" in json.loads(line) for line in open(tmp_path / "r.bin.metrics.jsonl"))


@pytest.mark.parametrize("extra,match", [
    (["--pgd_k", "2"], "--pgd_k is set but adversarial training is off; add --use_adv"),
    (["--use_adv", "--fgm_epsilon", "0.1", "--adv_type", "pgd"], "--fgm_epsilon is a setting of --adv_type fgm"),
    (["--use_adv", "--pgd_alpha", "0.1"], "--pgd_alpha is a setting of --adv_type pgd, but --adv_type is fgm"),
    (["--use_adv", "--deepspeed", "--deepspeed_config", "ds.json"], "not supported with DeepSpeed"),
    (["--use_adv", "--accumulation_steps", "2"], "--accumulation_steps 2"),
    (["--use_adv", "--adv_type", "pgd", "--pgd_k", "0"], "--pgd_k 0 must be at least 1"),
    (["--use_adv", "--adv_param_name", "embedding.words"], "no trainable parameter named 'embedding.words'"),
])
def test_misused_adv_flags_are_one_config_error(tmp_path, extra, match):
    from uer.cli.tasks import finetune
    with pytest.raises(ConfigError, match=match):
        finetune("classification", finetune_flags(tmp_path) + extra)

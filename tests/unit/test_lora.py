"""LoRA / DyLoRA layers and the model-level API (uer.layers.lora, uer.models.lora, uer.cli.lora_args)."""

import argparse
import json
import os

import pytest
import torch
from torch import nn

from uer.cli.lora_args import add_lora_args, freeze_prefixes_from_args, lora_config_from_args
from uer.config import config_from_dict
from uer.errors import CheckpointError, ConfigError
from uer.layers.dropout import dropout
from uer.layers.lora import LoRALinear, RankSampler
from uer.models import build_backbone, build_model
from uer.models.lora import (LoraConfig, adapter_summary, apply_lora, freeze_by_prefix, load_base_weights,
                             load_lora_config, load_lora_weights, lora_config_path, lora_modules,
                             lora_state_dict, lora_state_keys, merge_lora, save_lora_config, set_lora_rank,
                             truncate_lora_rank)
from uer.models.weights import load_weights, model_state, read_weights, save_state
from uer.training.checkpoint import CheckpointManager
from uer.training.optim import build_optimizer, parameter_groups

BERT = {"embedding": ["word", "pos", "seg"], "vocab_size": 100, "emb_size": 16, "hidden_size": 16,
        "feedforward_size": 32, "heads_num": 2, "layers_num": 2, "max_seq_length": 16, "dropout": 0.0,
        "target": ["mlm", "sp"], "tie_weights": True}
ALL_FOUR = ("attention.query", "attention.key", "attention.value", "attention.output")


class TaskModel(nn.Module):
    """A stand-in for a task model: backbone + ``head.*`` (the names the task framework uses)."""

    def __init__(self, config, labels=3):
        super().__init__()
        self.embedding, self.encoder = build_backbone(config)
        self.head = nn.Sequential()
        self.head.add_module("output", nn.Linear(config.hidden_size, labels))

    def forward(self, src, seg):
        return self.head(self.encoder(self.embedding(src, seg), seg)[:, 0])


def config(**kw):
    return config_from_dict({**BERT, **kw}, "test")


def task_model(seed=0, **kw):
    torch.manual_seed(seed)
    return TaskModel(config(**kw))


def batch(seed=1, b=3, length=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(5, 100, (b, length), generator=g), torch.ones(b, length, dtype=torch.long)


def randomise_adapters(model, seed=3, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in lora_modules(model).values():
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g) * scale)


# ----------------------------------------------------------------------------------- the layer

def test_lora_linear_keeps_the_base_parameters_and_starts_identical():
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    x = torch.randn(4, 6)
    want = base(x)
    layer = LoRALinear(base, r=3, alpha=6.0)
    assert layer.weight is base.weight and layer.bias is base.bias
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias", "lora_A", "lora_B"]
    assert layer.lora_A.shape == (3, 6) and layer.lora_B.shape == (5, 3)
    assert torch.equal(layer(x), want)                     # B = 0: the plain layer's output
    with torch.no_grad():
        layer.lora_B.normal_()
    manual = want + (x @ layer.lora_A.T @ layer.lora_B.T) * (6.0 / 3)
    torch.testing.assert_close(layer(x), manual, atol=1e-6, rtol=0)


def test_lora_init_is_seeded_and_leaves_the_global_rng_alone():
    base = nn.Linear(8, 8)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    a1 = LoRALinear(base, 4, 8, seed=11).lora_A
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a1, LoRALinear(base, 4, 8, seed=11).lora_A)
    assert not torch.equal(a1, LoRALinear(base, 4, 8, seed=12).lora_A)
    assert a1.abs().max() <= 1 / 8 ** 0.5 and a1.abs().max() > 0


def test_dropout_acts_on_the_adapter_input_only():
    torch.manual_seed(0)
    base = nn.Linear(16, 16)
    layer = LoRALinear(base, 4, 4, dropout=0.5)
    x = torch.randn(32, 16)
    assert torch.equal(layer.train()(x), base(x))          # B = 0: dropout on the adapter changes nothing
    with torch.no_grad():
        layer.lora_B.normal_()
    torch.manual_seed(1)
    train = layer.train()(x)
    eval_ = layer.eval()(x)
    assert not torch.allclose(train, eval_)
    torch.manual_seed(1)
    mask = dropout(torch.ones_like(x), 0.5, True)      # the same draw the layer's dropout makes
    torch.testing.assert_close(train, base(x) + ((x * mask) @ layer.lora_A.T @ layer.lora_B.T), atol=1e-5, rtol=0)


def test_dylora_draws_ranks_in_range_per_step_reproducibly():
    sampler = RankSampler(2, 6, seed=4)
    ranks = []
    for step in range(200):
        sampler.set_step(step)
        first = sampler()
        assert sampler() == first                          # one rank per step (all layers, micro-batches)
        ranks.append(first)
    assert set(ranks) == {2, 3, 4, 5, 6}
    again = RankSampler(2, 6, seed=4)
    again.set_step(17)
    assert again() == ranks[17]                            # a function of (seed, step): resumable
    other = RankSampler(2, 6, seed=5)
    assert [other.set_step(s) or other() for s in range(50)] != ranks[:50]


def test_dylora_training_forward_uses_the_first_b_ranks_with_scale_alpha_over_b():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(6, 6), r=4, alpha=8, min_r=1)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(3, 6)
    layer.rank_sampler = lambda: 2
    y = layer.train()(x)
    manual = nn.functional.linear(x, layer.weight, layer.bias) + \
        (x @ layer.lora_A[:2].T @ layer.lora_B[:, :2].T) * (8 / 2)
    torch.testing.assert_close(y, manual, atol=1e-6, rtol=0)
    y.sum().backward()
    assert layer.lora_B.grad[:, 2:].abs().max() == 0 and layer.lora_B.grad[:, :2].abs().max() > 0
    layer.eval()
    assert torch.allclose(layer(x), nn.functional.linear(x, layer.weight, layer.bias) + layer.delta_weight(4)
                          .matmul(x.T).T, atol=1e-6)                                    # eval: full rank
    layer.active_rank = 2
    torch.testing.assert_close(layer(x), manual, atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------------- apply_lora

def test_apply_lora_wraps_the_targets_and_freezes_all_but_adapters_and_head():
    model = task_model()
    wrapped = apply_lora(model, LoraConfig(r=4, alpha=8), trainable_prefixes=("head.",))
    assert wrapped == [f"encoder.layers.{i}.attention.{p}" for i in range(2) for p in ("query", "value")]
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable == sorted([f"{w}.lora_{x}" for w in wrapped for x in "AB"] +
                               ["head.output.weight", "head.output.bias"])
    assert isinstance(model.encoder.layers[0].attention.query, LoRALinear)
    assert not isinstance(model.encoder.layers[0].attention.key, LoRALinear)
    groups = parameter_groups(model, 0.01)
    assert sum(len(g["params"]) for g in groups) == len(trainable)
    all_four = apply_lora(task_model(), LoraConfig(targets=ALL_FOUR))
    assert len(all_four) == 8


def test_gradients_reach_only_the_trainable_parameters():
    model = task_model()
    apply_lora(model, LoraConfig(r=4, alpha=8), trainable_prefixes=("head.",))
    model(*batch()).sum().backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, name
        else:
            assert p.grad is None, name
    assert model.encoder.layers[1].attention.value.lora_B.grad.abs().max() > 0


def test_a_base_checkpoint_loads_strictly_into_the_lora_model_which_starts_identical(tmp_path):
    base = task_model(seed=0)
    src, seg = batch()
    want = base.eval()(src, seg)
    path = str(tmp_path / "base.bin")
    save_state(model_state(base), path)
    lora = task_model(seed=9)
    apply_lora(lora, LoraConfig(r=4, alpha=8, targets=ALL_FOUR), trainable_prefixes=("head.",))
    load_base_weights(lora, path)
    assert torch.equal(lora.eval()(src, seg), want)
    state = read_weights(path)
    del state["encoder.layers.0.attention.query.weight"]
    with pytest.raises(CheckpointError, match="attention.query.weight"):
        load_base_weights(lora, state)
    # The same file loads strictly (no allowance at all) before apply_lora: the names are the base names.
    fresh = task_model(seed=9)
    load_weights(fresh, path)
    apply_lora(fresh, LoraConfig(r=4, alpha=8))
    assert torch.equal(fresh.eval()(src, seg), want)


def test_target_errors_name_the_target_and_list_the_linear_layers():
    with pytest.raises(ConfigError, match=r"'attention.qkv' matches no nn.Linear.*attention.query.*head.output"):
        apply_lora(task_model(), LoraConfig(targets=("attention.qkv",)))
    with pytest.raises(ConfigError, match="'attention' matches MultiHeadAttention modules, not nn.Linear"):
        apply_lora(task_model(), LoraConfig(targets=("attention",)))
    with pytest.raises(ConfigError, match="trainable prefix 'heads.' matches no parameter.*head\\."):
        apply_lora(task_model(), LoraConfig(), trainable_prefixes=("heads.",))
    model = task_model()
    apply_lora(model, LoraConfig())
    with pytest.raises(ConfigError, match="already applied"):
        apply_lora(model, LoraConfig())
    with pytest.raises(ConfigError, match="--lora_min_r"):
        LoraConfig(r=4, dynamic=True, min_r=5).validate()
    with pytest.raises(ConfigError, match="--lora_r"):
        LoraConfig(r=0).validate()


def test_a_pretraining_model_gets_adapters_in_generator_and_discriminator_too():
    model = build_model(config())
    wrapped = apply_lora(model, LoraConfig(r=2))
    assert len(wrapped) == 4 and all(n.startswith("encoder.") for n in wrapped)
    assert all(p.requires_grad == ("lora_" in n) for n, p in model.named_parameters())


# ------------------------------------------------------------------------------ saving / loading

def test_the_adapter_file_holds_adapters_and_head_and_restores_the_trained_model(tmp_path):
    src, seg = batch()
    model = task_model(seed=0)
    base_path = str(tmp_path / "base.bin")
    save_state(model_state(model), base_path)
    apply_lora(model, LoraConfig(r=4, alpha=8), trainable_prefixes=("head.",))
    randomise_adapters(model)
    with torch.no_grad():
        model.head.output.weight.add_(1.0)
    want = model.eval()(src, seg)
    state = lora_state_dict(model)
    assert sorted(state) == sorted(lora_state_keys(model))
    assert {k.rsplit(".", 1)[-1] for k in state} == {"lora_A", "lora_B", "weight", "bias"}
    assert {k for k in state if not k.split(".")[-1].startswith("lora_")} == {"head.output.weight", "head.output.bias"}
    adapter_path = str(tmp_path / "adapter.bin")
    save_state(state, adapter_path)
    assert os.path.getsize(adapter_path) < os.path.getsize(base_path) / 5

    restored = task_model(seed=0)
    load_weights(restored, base_path)
    apply_lora(restored, LoraConfig(r=4, alpha=8), trainable_prefixes=("head.",))
    assert not torch.allclose(restored.eval()(src, seg), want)
    assert sorted(load_lora_weights(restored, adapter_path)) == sorted(state)
    assert torch.equal(restored.eval()(src, seg), want)


def test_adapter_loading_is_strict(tmp_path):
    model = task_model()
    apply_lora(model, LoraConfig(r=4), trainable_prefixes=("head.",))
    state = lora_state_dict(model)
    missing = {k: v for k, v in state.items() if not k.startswith("head.")}
    with pytest.raises(CheckpointError, match="missing from the file: head.output.weight"):
        load_lora_weights(model, missing)
    load_lora_weights(model, missing, allow_missing=("head.",))     # fine-tuning from a pretrained adapter
    with pytest.raises(CheckpointError, match="frozen base weights, not adapter weights.*--pretrained_model_path"):
        load_lora_weights(model, model_state(model))
    with pytest.raises(CheckpointError, match="not in the model: encoder.layers.0.attention.key.lora_A"):
        load_lora_weights(model, {**state, "encoder.layers.0.attention.key.lora_A": torch.zeros(4, 16)})
    other = task_model()
    apply_lora(other, LoraConfig(r=2), trainable_prefixes=("head.",))
    mismatch = r"shape mismatches: .*lora_A: file \(2, 16\) vs model \(4, 16\).*--lora_r"
    with pytest.raises(CheckpointError, match=mismatch):
        load_lora_weights(model, lora_state_dict(other))
    with pytest.raises(ConfigError, match="no LoRA layers; add --use_lora"):
        load_lora_weights(task_model(), state)


def test_checkpoint_manager_saves_and_resumes_only_the_selected_keys(tmp_path):
    model = task_model()
    apply_lora(model, LoraConfig(r=4))
    randomise_adapters(model)
    manager = CheckpointManager(str(tmp_path / "m.bin"), saved_keys=lora_state_keys)
    manager.save(2, model, {"engine": {}, "step": 2})
    saved = read_weights(manager.weights_path(2))
    assert sorted(saved) == sorted(lora_state_keys(model)) and len(saved) == 8
    state = CheckpointManager.load(manager.state_path(2))
    fresh = task_model()
    apply_lora(fresh, LoraConfig(r=4))
    manager.load_model(fresh, state["model"], source="x")
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in saved.items())
    with pytest.raises(CheckpointError, match="lacks 1 of the weights.*--use_lora"):
        manager.load_model(fresh, {k: v for k, v in saved.items() if k != sorted(saved)[0]}, source="x")
    plain = CheckpointManager(str(tmp_path / "p.bin"))
    plain.save(1, model, {"engine": {}, "step": 1})
    assert set(read_weights(plain.weights_path(1))) == set(model.state_dict())


def test_lora_config_file_roundtrip(tmp_path):
    cfg = LoraConfig(r=6, alpha=12, dropout=0.1, targets=ALL_FOUR, dynamic=True, min_r=2, seed=3)
    path = lora_config_path(str(tmp_path / "m.bin"))
    assert path.endswith("m.bin.lora.json")
    save_lora_config(cfg, path, base_model="base.bin")
    got, record = load_lora_config(path)
    assert got == cfg and record["base_model"] == "base.bin" and record["format"] == "uer-lora"
    (tmp_path / "bad.json").write_text(json.dumps({"format": "uer-lora", "lora": {"rank": 4}}))
    with pytest.raises(ConfigError, match="unknown LoRA setting"):
        load_lora_config(str(tmp_path / "bad.json"))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_lora_config(str(tmp_path / "none.json"))


# ------------------------------------------------------------------------- merging, truncation

@pytest.mark.parametrize("dynamic", [False, True])
def test_merge_gives_plain_linears_with_the_same_outputs(dynamic):
    src, seg = batch()
    model = task_model()
    base_keys = sorted(model.state_dict())
    apply_lora(model, LoraConfig(r=4, alpha=8, targets=ALL_FOUR, dynamic=dynamic, min_r=2),
               trainable_prefixes=("head.",))
    randomise_adapters(model)
    if dynamic:
        set_lora_rank(model, 3)
    model.eval()
    want = model(src, seg)
    merged = merge_lora(model)
    assert len(merged) == 8 and not lora_modules(model)
    assert all(type(m) is nn.Linear for n, m in model.named_modules() if n.endswith(".attention.query"))
    assert sorted(model.state_dict()) == base_keys
    assert (model(src, seg) - want).abs().max() <= 1e-6
    assert not hasattr(model, "set_training_step") and not hasattr(model, "lora_config")


def test_truncating_a_dylora_adapter_equals_the_dylora_forward_at_that_rank():
    src, seg = batch()
    model = task_model()
    apply_lora(model, LoraConfig(r=6, alpha=12, targets=ALL_FOUR, dynamic=True, min_r=2))
    randomise_adapters(model)
    model.eval()
    full = model(src, seg)
    set_lora_rank(model, 3)
    at_3 = model(src, seg)
    assert not torch.allclose(at_3, full, atol=1e-4)
    set_lora_rank(model, None)
    # The training forward at a drawn rank of 3 is the same function (dropout 0).
    model.train()
    for m in lora_modules(model).values():
        m.rank_sampler = lambda: 3
    torch.testing.assert_close(model(src, seg), at_3, atol=1e-6, rtol=0)
    model.eval()
    with pytest.raises(ConfigError, match="never trained"):
        truncate_lora_rank(model, 1)
    truncate_lora_rank(model, 3)
    layer = model.encoder.layers[0].attention.query
    assert layer.lora_A.shape == (3, 16) and layer.lora_B.shape == (16, 3) and not layer.dynamic
    assert lora_state_dict(model)["encoder.layers.0.attention.query.lora_A"].shape == (3, 16)
    assert (model(src, seg) - at_3).abs().max() <= 1e-6
    assert model.lora_config.r == 3 and not model.lora_config.dynamic


def test_the_dylora_step_hook_fixes_one_rank_per_step_and_keeps_a_models_own_hook():
    model = task_model()
    seen = []
    model.set_training_step = seen.append                  # e.g. ELECTRA's temperature schedule
    apply_lora(model, LoraConfig(r=8, targets=ALL_FOUR, dynamic=True, min_r=1, seed=2))
    layers = list(lora_modules(model).values())
    model.train()
    ranks = set()
    for step in range(30):
        model.set_training_step(step)
        drawn = {m.rank() for m in layers}
        assert len(drawn) == 1                             # every layer uses the same rank this step
        ranks |= drawn
    assert seen == list(range(30)) and len(ranks) > 3 and ranks <= set(range(1, 9))
    merge_lora(model)
    assert model.set_training_step == seen.append          # the model's own hook is back


# --------------------------------------------------------------------------------------- freezing

def test_freeze_by_prefix():
    model = task_model()
    frozen = freeze_by_prefix(model, ["embedding.", "encoder.layers.0."])
    assert frozen and all(n.startswith(("embedding.", "encoder.layers.0.")) for n in frozen)
    for name, p in model.named_parameters():
        assert p.requires_grad == (name not in frozen)
    with pytest.raises(ConfigError, match=r"--freeze_prefixes: 'encoder.layer.' matches no parameter.*embedding\."):
        freeze_by_prefix(model, ["encoder.layer."])
    opt = build_optimizer(model, 1e-3)
    assert sum(len(g["params"]) for g in opt.param_groups) == sum(p.requires_grad for p in model.parameters())


def test_adapter_summary_counts_what_checkpoints_hold():
    model = build_model(config())
    apply_lora(model, LoraConfig(r=4))
    s = adapter_summary(model)
    assert s["saved_params"] == s["trainable_params"] == 2 * 2 * (4 * 16 + 16 * 4)   # layers x targets x (A + B)
    assert s["total_params"] == sum(p.numel() for p in model.parameters())
    assert s["saved_bytes"] == 4 * s["saved_params"]


# -------------------------------------------------------------------------------------------- flags

def parse(*argv):
    p = argparse.ArgumentParser()
    add_lora_args(p)
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args(list(argv))


def test_flags_defaults_follow_tencentpretrain_and_build_the_config():
    args = parse()
    assert (args.lora_r, args.lora_alpha, args.lora_dropout) == (8, 16.0, 0.0)
    assert lora_config_from_args(args) is None
    cfg = lora_config_from_args(parse("--use_lora", "--lora_targets", "attention.query,attention.key",
                                      "attention.value", "--dylora", "--lora_min_r", "2", "--lora_r", "4"))
    assert cfg == LoraConfig(r=4, alpha=16.0, dropout=0.0, dynamic=True, min_r=2, seed=7,
                             targets=("attention.query", "attention.key", "attention.value"))
    assert lora_config_from_args(parse("--use_lora")).targets == ("attention.query", "attention.value")
    assert freeze_prefixes_from_args(parse("--freeze_prefixes", "embedding.,encoder.layers.0.")) == \
        ["embedding.", "encoder.layers.0."]


def test_flag_errors_name_the_flag():
    with pytest.raises(ConfigError, match="--dylora is given without --use_lora"):
        lora_config_from_args(parse("--dylora"))
    with pytest.raises(ConfigError, match="--lora_pretrained_model_path is given without --use_lora"):
        lora_config_from_args(parse("--lora_pretrained_model_path", "a.bin"))
    with pytest.raises(ConfigError, match="--lora_min_r"):
        lora_config_from_args(parse("--use_lora", "--dylora", "--lora_r", "4", "--lora_min_r", "6"))
    with pytest.raises(ConfigError, match="--lora_dropout"):
        lora_config_from_args(parse("--use_lora", "--lora_dropout", "1.5"))

"""AdamW parameter groups (no decay on biases / norm weights, shared parameters once) and the local
engine: gradient accumulation, clipping, precision checks."""

import pytest
import torch
from torch import nn

from uer.errors import ConfigError
from uer.training.engines.local import LocalEngine
from uer.training.optim import build_optimizer, parameter_groups
from uer.training.schedules import build_scheduler


class Tiny(nn.Module):
    def __init__(self, tie=True):
        super().__init__()
        self.emb = nn.Embedding(11, 4)
        self.norm = nn.LayerNorm(4)
        self.proj = nn.Linear(4, 4)
        self.out = nn.Linear(4, 11)
        if tie:
            self.out.weight = self.emb.weight          # tied input/output embedding
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)

    def forward(self, idx):
        return self.out(self.proj(self.norm(self.emb(idx))))


def ids(params):
    return {id(p) for p in params}


def test_decay_on_matrices_and_embeddings_not_on_biases_and_norms():
    model = Tiny()
    decay, no_decay = parameter_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert ids(decay["params"]) == ids([model.emb.weight, model.proj.weight])
    assert ids(no_decay["params"]) == ids([model.norm.weight, model.norm.bias, model.proj.bias, model.out.bias])


def test_shared_parameters_appear_exactly_once_and_frozen_ones_not_at_all():
    model = Tiny()
    shared = nn.Parameter(torch.ones(4))
    model.proj.bias = shared
    model.extra = nn.Linear(4, 4)
    model.extra.bias = shared
    groups = parameter_groups(model, 0.01)
    every = [p for g in groups for p in g["params"]]
    assert len(every) == len(ids(every))
    assert ids(every) == {id(p) for p in model.parameters() if p.requires_grad}
    assert not ids(every) & ids(model.frozen.parameters())
    build_optimizer(model, 1e-3)                              # torch rejects duplicates: must not raise


def test_a_step_changes_parameters_and_decay_is_decoupled():
    torch.manual_seed(0)
    model = Tiny(tie=False)
    lr, wd = 0.1, 0.5
    opt = build_optimizer(model, lr, wd)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["eps"] == 1e-6 and opt.defaults["betas"] == (0.9, 0.999)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    # Zero gradients: Adam's update is 0, so only decoupled weight decay moves parameters.
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in model.named_parameters():
        if n.startswith("frozen"):
            assert torch.equal(p, before[n])
        elif p.dim() >= 2:
            assert torch.allclose(p, before[n] * (1 - lr * wd), atol=1e-7), n
        else:
            assert torch.equal(p, before[n]), n
    # A real loss moves every trainable parameter.
    opt.zero_grad()
    model(torch.arange(11)).pow(2).mean().backward()
    snapshot = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt.step()
    for n, p in model.named_parameters():
        assert torch.equal(p, snapshot[n]) == n.startswith("frozen"), n


def test_a_model_with_only_vectors_builds():
    opt = build_optimizer(nn.LayerNorm(8), 1e-3)
    assert [len(g["params"]) for g in opt.param_groups] == [0, 2]


# --------------------------------------------------------------------------- LocalEngine

class Regression(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(6, 3)
        self.seen_dtype = None

    def forward(self, batch):
        pred = self.linear(batch["x"])
        self.seen_dtype = pred.dtype
        return {"loss": (pred.float() - batch["y"]).pow(2).mean()}


def make_engine(precision="fp32", max_grad_norm=0.0, accumulation_steps=1, lr=0.0, model=None):
    torch.manual_seed(0)
    model = model or Regression()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    return LocalEngine(model, opt, build_scheduler(opt, "constant", 0, 10), torch.device("cpu"),
                       precision=precision, max_grad_norm=max_grad_norm, accumulation_steps=accumulation_steps)


def grads(model):
    return [p.grad.detach().clone() for p in model.parameters()]


def test_accumulation_matches_one_full_batch():
    torch.manual_seed(1)
    x, y = torch.randn(16, 6), torch.randn(16, 3)
    full = make_engine()
    full.backward(full.forward({"x": x, "y": y})["loss"])
    accumulated = make_engine(accumulation_steps=2)
    for half in (slice(0, 8), slice(8, 16)):
        accumulated.backward(accumulated.forward({"x": x[half], "y": y[half]})["loss"])
    for a, b in zip(grads(full.model), grads(accumulated.model)):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)
    norm, skipped = accumulated.step()
    assert not skipped
    assert norm == pytest.approx(float(torch.cat([g.flatten() for g in grads(full.model)]).norm()), rel=1e-5)
    assert all(p.grad is None for p in accumulated.model.parameters())      # zeroed after the step


def test_clipping_caps_the_update_and_returns_the_pre_clip_norm():
    engine = make_engine(max_grad_norm=1.0, lr=1.0)
    x, y = torch.randn(8, 6) * 10, torch.randn(8, 3) * 100
    engine.backward(engine.forward({"x": x, "y": y})["loss"])
    raw = float(torch.cat([p.grad.flatten() for p in engine.model.parameters()]).norm())
    assert raw > 10
    before = [p.detach().clone() for p in engine.model.parameters()]
    norm, skipped = engine.step()
    assert norm == pytest.approx(raw, rel=1e-5) and not skipped
    update = torch.cat([(b - p.detach()).flatten() for b, p in zip(before, engine.model.parameters())])
    assert float(update.norm()) == pytest.approx(1.0, rel=1e-4)        # SGD lr 1: update = clipped grad


def test_no_clipping_when_max_grad_norm_is_zero():
    engine = make_engine(max_grad_norm=0.0, lr=1.0)
    x, y = torch.randn(8, 6) * 10, torch.randn(8, 3) * 100
    engine.backward(engine.forward({"x": x, "y": y})["loss"])
    raw = float(torch.cat([p.grad.flatten() for p in engine.model.parameters()]).norm())
    before = [p.detach().clone() for p in engine.model.parameters()]
    engine.step()
    update = torch.cat([(b - p.detach()).flatten() for b, p in zip(before, engine.model.parameters())])
    assert float(update.norm()) == pytest.approx(raw, rel=1e-4)


def test_step_advances_the_schedule_and_state_round_trips():
    torch.manual_seed(0)
    model = Regression()
    opt = torch.optim.AdamW(model.parameters(), lr=1.0)
    engine = LocalEngine(model, opt, build_scheduler(opt, "linear", 2, 10), torch.device("cpu"))
    assert engine.learning_rate() == 0.0
    for step in range(1, 4):
        engine.backward(engine.forward({"x": torch.randn(4, 6), "y": torch.randn(4, 3)})["loss"])
        engine.step()
        assert engine.learning_rate() == pytest.approx(min(step / 2, (10 - step) / 8))
    state = engine.state_dict()
    assert state["skipped_steps"] == 0 and "scaler" not in state
    model2 = Regression()
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1.0)
    engine2 = LocalEngine(model2, opt2, build_scheduler(opt2, "linear", 2, 10), torch.device("cpu"))
    engine2.load_state_dict(state)
    assert engine2.learning_rate() == engine.learning_rate()
    assert engine2.scheduler.last_epoch == 3


def test_fp16_on_cpu_and_unknown_precision_are_config_errors():
    with pytest.raises(ConfigError, match="fp16"):
        make_engine(precision="fp16")
    with pytest.raises(ConfigError, match="precision"):
        make_engine(precision="fp8")


def test_bf16_on_cpu_runs_under_autocast():
    engine = make_engine(precision="bf16", lr=0.1)
    x, y = torch.randn(8, 6), torch.randn(8, 3)
    out = engine.forward({"x": x, "y": y})
    assert engine.model.seen_dtype == torch.bfloat16
    assert torch.isfinite(out["loss"])
    before = engine.model.linear.weight.detach().clone()
    engine.backward(out["loss"])
    assert engine.model.linear.weight.grad.dtype == torch.float32      # master weights stay fp32
    norm, skipped = engine.step()
    assert norm > 0 and not skipped
    assert not torch.equal(before, engine.model.linear.weight)


def test_fp32_forward_has_no_autocast():
    engine = make_engine()
    engine.forward({"x": torch.randn(2, 6), "y": torch.randn(2, 3)})
    assert engine.model.seen_dtype == torch.float32


def test_to_device_moves_tensors_and_keeps_other_values():
    engine = make_engine()
    out = engine.to_device({"x": torch.ones(2), "tag": (1, 2)})
    assert out["tag"] == (1, 2) and out["x"].device.type == "cpu"

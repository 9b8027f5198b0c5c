"""UER-py / TencentPretrain options (issue 13 item 3): the tri_stage and cosine_with_restarts
schedules against hand-computed values, UER-py's Adafactor, --deep_init, --log_path / --log_level,
and the model keys remove_embedding_layernorm / remove_attention_scale / layer_number_scale /
has_residual_attention (working as there, or refused naming the key)."""

import json
import math

import pytest
import torch
from torch import nn

from uer.cli.optim_args import check_optimizer_flags
from uer.config import config_from_dict
from uer.errors import ConfigError
from uer.registry import SCHEDULERS
from uer.training.adafactor import Adafactor
from uer.training.optim import build_optimizer
from uer.training.schedules import build_scheduler

WARMUP, TOTAL, DECAY = 10, 110, 50


def tri(step, **kw):
    return SCHEDULERS.get("tri_stage")(step, WARMUP, TOTAL, decay_steps=DECAY, **kw)


def restarts(step, cycles):
    return SCHEDULERS.get("cosine_with_restarts")(step, WARMUP, TOTAL, num_cycles=cycles)


# ------------------------------------------------------------------------------------------------
# Schedules
# ------------------------------------------------------------------------------------------------

def test_tri_stage_matches_hand_computed_values():
    # warm-up from 0.01 to 1 over 10 steps: 0.01 + step * 0.099
    assert tri(0) == pytest.approx(0.01)
    assert tri(5) == pytest.approx(0.505)
    assert tri(9) == pytest.approx(0.901)
    # hold at 1 until total - decay = 60
    assert tri(10) == 1.0 and tri(59) == 1.0
    # exp decay from 1 at step 60 to 0.05 at step 110: halfway is sqrt(0.05)
    assert tri(60) == pytest.approx(1.0)
    assert tri(85) == pytest.approx(math.sqrt(0.05))
    assert tri(110) == pytest.approx(0.05)
    # and 0.05 after the end
    assert tri(111) == tri(500) == pytest.approx(0.05)


def test_tri_stage_without_warmup_starts_at_the_full_rate():
    assert SCHEDULERS.get("tri_stage")(0, 0, TOTAL, decay_steps=DECAY) == 1.0   # UER-py divides by zero here


def test_cosine_with_restarts_matches_hand_computed_values():
    assert restarts(5, 2) == pytest.approx(0.5)            # warm-up ramp
    assert restarts(10, 2) == pytest.approx(1.0)
    assert restarts(35, 2) == pytest.approx(0.5)           # a quarter through: half-way down the first cosine
    assert restarts(59, 2) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.98)))
    assert restarts(60, 2) == pytest.approx(1.0)           # hard restart
    assert restarts(85, 2) == pytest.approx(0.5)
    assert restarts(110, 2) == 0.0 and restarts(200, 2) == 0.0


def test_one_cycle_is_plain_cosine_as_in_uer_py():
    cosine = SCHEDULERS.get("cosine")
    for step in range(0, TOTAL):
        assert restarts(step, 1) == pytest.approx(cosine(step, WARMUP, TOTAL))


@pytest.mark.parametrize("name,kw", [("tri_stage", {"decay_steps": DECAY}), ("cosine_with_restarts", {"num_cycles": 3})])
def test_schedule_state_resumes_exactly(name, kw):
    def fresh():
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
        return opt, build_scheduler(opt, name, WARMUP, TOTAL, **kw)

    opt, sched = fresh()
    lrs = []
    for _ in range(TOTAL + 5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    opt, sched = fresh()
    for _ in range(40):
        opt.step()
        sched.step()
    saved = sched.state_dict(), opt.state_dict()      # what a checkpoint holds
    opt2, sched2 = fresh()
    sched2.load_state_dict(saved[0])
    opt2.load_state_dict(saved[1])
    resumed = []
    for _ in range(TOTAL + 5 - 40):
        resumed.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    assert resumed == pytest.approx(lrs[40:], rel=0, abs=0)
    assert lrs[TOTAL] == pytest.approx(0.1 * (0.05 if name == "tri_stage" else 0.0))


# ------------------------------------------------------------------------------------------------
# Adafactor
# ------------------------------------------------------------------------------------------------

def _one_step(param, grad, **kw):
    opt = Adafactor([param], **kw)
    param.grad = grad.clone()
    opt.step()
    return opt


def test_adafactor_first_step_is_the_gradient_sign_times_lr():
    # step 1: the decay 1 - 1^-0.8 is 0, so the second moment is g^2 and the update g / |g|
    p = nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))
    _one_step(p, torch.tensor([0.5, -4.0, 1e-3]), lr=0.1)
    assert torch.allclose(p.detach(), torch.tensor([0.9, 2.1, 2.9]), atol=1e-6)


def test_adafactor_factored_second_moment_is_exact_for_rank_one_squares():
    # g = a b^T: g^2 is rank one, so row x col / mean(row) is g^2 itself and the update is sign(g)
    a, b = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0, -1.0])
    g = torch.outer(a, b)
    p = nn.Parameter(torch.zeros(2, 3))
    opt = _one_step(p, g, lr=0.01)
    assert torch.allclose(p.detach(), -0.01 * torch.sign(g), atol=1e-6)
    assert set(opt.state[p]) == {"step", "exp_avg_sq_row", "exp_avg_sq_col"}
    assert opt.state[p]["exp_avg_sq_row"].shape == (2,) and opt.state[p]["exp_avg_sq_col"].shape == (3,)


@pytest.mark.parametrize("clip,expected", [(1.0, 1.0), (2.0, None)])
def test_adafactor_second_step_decay_and_update_clipping(clip, expected):
    p = nn.Parameter(torch.tensor([0.0]))
    opt = Adafactor([p], lr=1.0, clip_threshold=clip)
    for g in (1.0, 3.0):
        before = p.item()
        p.grad = torch.tensor([g])
        opt.step()
    beta2 = 1 - 2 ** -0.8                               # step 2's decay
    v = beta2 * (1 + 1e-30) + (1 - beta2) * (9 + 1e-30)
    raw = 3.0 / math.sqrt(v)                            # 1.268: above 1, so clip 1.0 cuts it to 1
    assert raw > 1.0
    assert before - p.item() == pytest.approx(expected if expected is not None else raw, rel=1e-6)


def test_adafactor_decoupled_weight_decay_skips_biases():
    torch.manual_seed(0)
    layer = nn.Linear(3, 2)
    w0, b0 = layer.weight.detach().clone(), layer.bias.detach().clone()
    opt = build_optimizer(layer, 0.1, weight_decay=0.5, kind="adafactor")
    assert isinstance(opt, Adafactor)
    layer.weight.grad = torch.zeros_like(layer.weight)
    layer.bias.grad = torch.zeros_like(layer.bias)
    opt.step()                                          # zero gradient: only the decay moves weights
    assert torch.allclose(layer.weight.detach(), w0 * (1 - 0.5 * 0.1), atol=1e-7)
    assert torch.allclose(layer.bias.detach(), b0)


def test_adafactor_state_resumes_exactly():
    def run(steps, state=None):
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 1))
        opt = build_optimizer(model, 0.01, kind="adafactor")
        if state is not None:
            model.load_state_dict(state[0])
            opt.load_state_dict(state[1])
        for step in steps:
            torch.manual_seed(100 + step)
            x = torch.randn(8, 4)
            model.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
        return model, opt

    straight, _ = run(range(6))
    half, opt = run(range(3))
    saved = ({k: v.clone() for k, v in half.state_dict().items()}, opt.state_dict())
    resumed, _ = run(range(3, 6), saved)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_unknown_optimizer_is_refused_by_name():
    with pytest.raises(ConfigError, match="--optimizer 'lamb'.*adamw, adafactor"):
        build_optimizer(nn.Linear(2, 2), 0.1, kind="lamb")


# ------------------------------------------------------------------------------------------------
# Flag checks
# ------------------------------------------------------------------------------------------------

def _args(**kw):
    import argparse
    base = dict(optimizer="adamw", scheduler="linear", warmup=0.1, lr_decay=0.5, num_cycles=1,
                adafactor_clip_threshold=1.0, adafactor_decay_rate=-0.8)
    base.update(kw)
    return argparse.Namespace(**base)


@pytest.mark.parametrize("kw,given,message", [
    ({"optimizer": "adafactor"}, {"beta1"}, "--beta1 is an AdamW setting"),
    ({}, {"adafactor_decay_rate"}, "--adafactor_decay_rate applies to --optimizer adafactor"),
    ({"scheduler": "cosine"}, {"num_cycles"}, "--num_cycles applies to --scheduler cosine_with_restarts"),
    ({"lr_decay": 1.5}, set(), "--lr_decay is tri_stage's decay phase"),
    ({"scheduler": "tri_stage", "warmup": 0.6, "lr_decay": 0.5}, set(), "would overlap"),
    ({"scheduler": "cosine_with_restarts", "num_cycles": 0}, {"num_cycles"}, "--num_cycles must be at least 1"),
    ({"optimizer": "adafactor", "adafactor_decay_rate": 0.5}, set(), "--adafactor_decay_rate must be negative"),
    ({"scheduler": "tri_stages"}, set(), "tri_stage"),
])
def test_bad_optimizer_flags_are_refused_naming_the_flag(kw, given, message):
    with pytest.raises(ConfigError, match=message):
        check_optimizer_flags(_args(**kw), given)


def test_good_optimizer_flags_pass():
    check_optimizer_flags(_args(optimizer="adafactor", scheduler="tri_stage"), {"adafactor_clip_threshold"})
    check_optimizer_flags(_args(scheduler="cosine_with_restarts", num_cycles=3), {"num_cycles"})


# ------------------------------------------------------------------------------------------------
# --deep_init
# ------------------------------------------------------------------------------------------------

def _tiny(**kw):
    from uer.models import build_model
    data = {"emb_size": 64, "hidden_size": 64, "feedforward_size": 256, "heads_num": 2, "layers_num": 8,
            "max_seq_length": 16, "vocab_size": 50, "target": ["mlm"], "remove_transformer_bias": False}
    data.update(kw)
    return build_model(config_from_dict(data))


def test_deep_init_scales_the_residual_projections_only():
    from uer.models.deep_init import apply_deep_init
    torch.manual_seed(0)
    model = _tiny()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert apply_deep_init(model, 8) == 16                # attention.output + feed_forward.linear_2 per layer
    expected = 0.02 / math.sqrt(2 * 8)                    # UER-py: 0.02 / sqrt(2 * layers_num)
    for name, p in model.named_parameters():
        if name.endswith(("attention.output.weight", "feed_forward.linear_2.weight")):
            assert p.std().item() == pytest.approx(expected, rel=0.1), name
        elif name.endswith(("attention.output.bias", "feed_forward.linear_2.bias")):
            assert torch.count_nonzero(p) == 0
        else:
            assert torch.equal(p, before[name]), name     # query/key/value, linear_1, embeddings, heads


def test_deep_init_with_pretrained_weights_is_refused(tmp_path):
    from uer.cli.pretrain import main
    with pytest.raises(SystemExit) as e:
        main(["--dataset_path", str(tmp_path / "none"), "--config_path", "x.json", "--deep_init",
              "--pretrained_model_path", str(tmp_path / "w.bin"), "--output_model_path", str(tmp_path / "o.bin")])
    assert e.value.code == 2


# ------------------------------------------------------------------------------------------------
# pretrain.py and fine-tuning with the options, through the command line
# ------------------------------------------------------------------------------------------------

def test_pretrain_adafactor_tri_stage_deep_init_and_log_file(tiny_corpus, tmp_path, capsys):
    from uer.cli.preprocess import main as preprocess_main
    from uer.cli.pretrain import main as pretrain_main
    vocab, dataset = str(tiny_corpus / "vocab.txt"), str(tmp_path / "dataset")
    preprocess_main(["--corpus_path", str(tiny_corpus / "corpus.txt"), "--vocab_path", vocab,
                     "--dataset_path", dataset, "--seq_length", "32", "--data_processor", "bert"])
    model, log = str(tmp_path / "m.bin"), tmp_path / "train.log"
    pretrain_main(["--dataset_path", dataset, "--vocab_path", vocab, "--config_path", str(tiny_corpus / "tiny_bert.json"),
                   "--output_model_path", model, "--total_steps", "10", "--batch_size", "4", "--num_workers", "0",
                   "--report_steps", "1", "--learning_rate", "1e-3", "--optimizer", "adafactor",
                   "--scheduler", "tri_stage", "--warmup", "0.2", "--lr_decay", "0.4", "--deep_init",
                   "--log_path", str(log), "--log_level", "error", "--log_file_level", "DEBUG"])
    lrs = {r["step"]: r["lr"] for r in map(json.loads, open(model + ".metrics.jsonl"))}
    # 10 steps: warm-up 2, hold until 6, decay to 0.05 at 10; the lr logged at step s is the schedule's
    # value after s updates (the next update's)
    assert sorted(lrs) == list(range(1, 11))
    for step, lr in lrs.items():
        assert lr == pytest.approx(1e-3 * tri_value(step, 2, 10, 4), rel=1e-6), step
    assert lrs[1] == pytest.approx(0.505e-3) and lrs[10] == pytest.approx(0.05e-3)
    text = log.read_text()
    assert "--deep_init: 4 residual projections" in text and "final model written" in text
    assert "final model written" not in capsys.readouterr().err     # console at ERROR


def tri_value(step, warmup, total, decay):
    return SCHEDULERS.get("tri_stage")(step, warmup, total, decay_steps=decay)


def test_finetune_adafactor_cosine_with_restarts_and_log_file(tiny_corpus, tmp_path):
    from uer.cli.classifier import finetune_main
    log = tmp_path / "ft.log"
    finetune_main(["--config_path", str(tiny_corpus / "tiny_bert.json"), "--vocab_path", str(tiny_corpus / "vocab.txt"),
                   "--train_path", str(tiny_corpus / "dev.tsv"), "--dev_path", str(tiny_corpus / "dev.tsv"),
                   "--output_model_path", str(tmp_path / "cls.bin"), "--epochs_num", "1", "--batch_size", "16",
                   "--seq_length", "32", "--optimizer", "adafactor", "--scheduler", "cosine_with_restarts",
                   "--num_cycles", "2", "--log_path", str(log)])
    assert "dev" in log.read_text()


def test_log_path_in_a_missing_folder_is_refused(tmp_path, capsys):
    from uer.cli.classifier import finetune_main
    with pytest.raises(SystemExit):
        finetune_main(["--train_path", "t.tsv", "--dev_path", "d.tsv", "--log_path", str(tmp_path / "no" / "x.log"),
                       "--output_model_path", str(tmp_path / "cls.bin")])
    assert "--log_path" in capsys.readouterr().err


def test_log_level_names_are_uer_py_s():
    from uer.cli.pretrain import build_parser
    assert build_parser().parse_args(["--log_level", "debug"]).log_level == "DEBUG"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--log_level", "LOUD"])


# ------------------------------------------------------------------------------------------------
# Model config keys
# ------------------------------------------------------------------------------------------------

def test_remove_embedding_layernorm_drops_the_embedding_norm():
    assert _tiny().embedding.norm is not None
    assert _tiny(remove_embedding_layernorm=True).embedding.norm is None


def test_remove_attention_scale_uses_unscaled_scores():
    torch.manual_seed(0)
    model = _tiny(remove_attention_scale=True, layers_num=1, dropout=0.0).eval()
    att = model.encoder.layers[0].attention
    x = torch.randn(2, 5, 64)
    from uer.layers.masks import build_attention_mask
    y = att(x, build_attention_mask("fully_visible", torch.ones(2, 5, dtype=torch.long)))
    q, k, v = (m(x).view(2, 5, 2, 32).transpose(1, 2) for m in (att.query, att.key, att.value))
    ref = torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v         # no 1/sqrt(32)
    assert torch.allclose(y, att.output(ref.transpose(1, 2).reshape(2, 5, 64)), atol=1e-5)


def test_layer_number_scale_is_accepted_and_computes_the_same_attention():
    """TencentPretrain (BLOOM): scores / (sqrt(d) * n), + mask, x n, + mask, clamped at -10000 — the
    same probabilities as plain scaled attention, which is what uer computes (fp32 softmax in SDPA)."""
    torch.manual_seed(0)
    q, k = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 4, 8)
    mask = torch.tensor([0.0, 0.0, 0.0, -10000.0]).view(1, 1, 1, 4)
    plain = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8) + mask, dim=-1)
    for n in (1, 3, 24):
        scores = (q @ k.transpose(-1, -2)) * (1.0 / (math.sqrt(8) * n)) + mask
        scores = torch.max(scores * n + mask, torch.tensor(-10000.0))
        assert torch.allclose(torch.softmax(scores, dim=-1), plain, atol=1e-6)
    config = config_from_dict({**_TINY_KEYS, "layer_number_scale": True})
    assert config == config_from_dict(_TINY_KEYS)          # nothing to build differently


def test_layer_number_scale_must_be_a_boolean():
    with pytest.raises(ConfigError, match="'layer_number_scale'.*true or false"):
        config_from_dict({**_TINY_KEYS, "layer_number_scale": "yes"})


def test_has_residual_attention_is_refused_naming_the_key():
    config_from_dict({**_TINY_KEYS, "has_residual_attention": False})          # asks for nothing: fine
    with pytest.raises(ConfigError, match="'has_residual_attention'.*RealFormer"):
        config_from_dict({**_TINY_KEYS, "has_residual_attention": True})


_TINY_KEYS = {"emb_size": 32, "hidden_size": 32, "feedforward_size": 64, "heads_num": 2, "layers_num": 2,
              "target": ["mlm"]}

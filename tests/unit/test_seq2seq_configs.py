"""The shipped encoder-decoder configs (models/t5, t5_v1_1, bart, pegasus, transformer): they load, have
their family's properties, build, run a tiny forward, and have the published parameter counts (the
differences are spelled out: our 64-row vocabulary padding, BART's two unused offset position rows,
biases that transformers keeps as buffers, sinusoidal tables that are buffers here)."""

import glob
import os

import pytest
import torch

from uer.config import config_from_dict, load_config
from uer.models import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAMILIES = ("t5", "t5_v1_1", "bart", "pegasus", "transformer", "ul2")
CONFIGS = sorted(p for f in FAMILIES for p in glob.glob(os.path.join(ROOT, "models", f, "*.json")))


def rel(path):
    return os.path.relpath(path, os.path.join(ROOT, "models")).replace(os.sep, "/")


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def meta_count(path, **overrides):
    with torch.device("meta"):
        return n_params(build_model(load_config(path, overrides)))


def test_all_encoder_decoder_configs_are_shipped():
    assert {rel(p) for p in CONFIGS} == {"t5/small.json", "t5/base.json", "t5/large.json", "t5_v1_1/small.json",
                                         "t5_v1_1/base.json", "bart/base.json", "bart/large.json",
                                         "pegasus/base.json", "transformer/base.json", "ul2/base.json"}


@pytest.mark.parametrize("path", CONFIGS, ids=rel)
def test_config_loads_round_trips_and_has_family_properties(path):
    c = load_config(path)
    assert config_from_dict(c.to_dict(), path) == c
    assert c.decoder == "transformer" and c.target == ["lm"] and c.mask == "fully_visible"
    assert c.decoder_layers_num == c.layers_num
    family = rel(path).split("/")[0]
    if family == "ul2":      # a T5 v1.1 base fed by the ul2 processor
        assert c == load_config(os.path.join(ROOT, "models", "t5_v1_1", "base.json"), {"data_processor": "ul2"})
        family = "t5_v1_1"
    if family.startswith("t5"):
        assert c.embedding == c.tgt_embedding == ["word"] and c.relative_position_embedding
        assert c.remove_attention_scale and c.layernorm == "t5" and c.layernorm_positioning == "pre"
        assert c.remove_transformer_bias and c.share_embedding and c.head_size == 64
        assert (c.feed_forward, c.hidden_act, c.tie_weights) == \
            (("gated", "gelu_fast", False) if family == "t5_v1_1" else ("dense", "relu", True))
        assert c.scale_tied_output == (family == "t5")
    if family == "bart":
        assert c.embedding == ["word", "pos"] and c.layernorm_positioning == "post" and c.has_lmtarget_bias
    if family in ("pegasus", "transformer"):
        assert c.tgt_embedding == ["word", "sinusoidalpos"] and c.scale_embedding
    assert c.layernorm_positioning == ("post" if family in ("bart", "transformer") else "pre")


@pytest.mark.parametrize("path", CONFIGS, ids=rel)
def test_config_builds_shrunk_and_runs(path):
    c = load_config(path, {"vocab_size": 100, "hidden_size": 32, "emb_size": 32, "feedforward_size": 48,
                           "heads_num": 2, "attention_head_size": 0, "layers_num": 2, "decoder_layers_num": 1,
                           "dropout": 0.0})
    torch.manual_seed(0)
    model = build_model(c).eval()
    src = torch.randint(1, 100, (2, 7))
    seg = torch.ones_like(src)
    tgt_in = torch.randint(1, 100, (2, 5))
    with torch.no_grad():
        out = model({"src": src, "seg": seg, "tgt_in": tgt_in, "tgt_out": torch.roll(tgt_in, -1, 1),
                     "tgt_seg": torch.ones_like(tgt_in)})
    assert set(out) == {"loss", "lm_loss", "lm_acc"} and torch.isfinite(out["loss"])
    assert model.flops_per_token(128) > 0


@pytest.mark.parametrize("name,vocab,published,extra", [
    # T5 (vocabulary 32,128 = 502 x 64: no padding): transformers' T5ForConditionalGeneration.
    ("t5/small.json", 32128, 60_506_624, 0),
    ("t5/base.json", 32128, 222_903_552, 0),
    ("t5/large.json", 32128, 737_668_096, 0),
    # T5 v1.1: untied lm_head.
    ("t5_v1_1/small.json", 32128, 76_961_152, 0),
    ("t5_v1_1/base.json", 32128, 247_577_856, 0),
    # UL2 at T5 v1.1 base shape (the released UL2 is 20B); with [NLU]/[NLG]/[S2S] appended, 32,131 rows
    # pad to 32,192 in the shared table and in the untied output layer.
    ("ul2/base.json", 32128, 247_577_856, 0),
    ("ul2/base.json", 32131, 247_577_856, 2 * 64 * 768),
    # BartForConditionalGeneration: 50,265 -> 50,304 rows (+39), its 2 offset rows per position table are
    # never used (we hold 1024, it 1026), and its final_logits_bias is a buffer (ours: a parameter).
    ("bart/base.json", 50265, 139_420_416, 39 * 768 - 2 * 2 * 768 + 50304),
    ("bart/large.json", 50265, 406_291_456, 39 * 1024 - 2 * 2 * 1024 + 50304),
    # PegasusForConditionalGeneration at base size (12 + 12 x 768, vocabulary 96,103 -> 96,128): its two
    # sinusoidal tables (1024 x 768) are parameters there, buffers here; final_logits_bias a buffer there.
    ("pegasus/base.json", 96103, 273_858_816, 25 * 768 - 2 * 1024 * 768 + 96128),
])
def test_published_parameter_counts(name, vocab, published, extra):
    assert meta_count(os.path.join(ROOT, "models", name), vocab_size=vocab) == published + extra


def test_pegasus_base_at_32k_vocabulary_is_the_papers_223m():
    assert meta_count(os.path.join(ROOT, "models", "pegasus", "base.json"), vocab_size=32000) == 223_086_848


def test_transformer_base_counts():
    """Vaswani et al.'s base model (65M, shared 37k BPE vocabulary) = MarianMTModel at that size
    (63,606,784, of which 2 x 512 x 512 sinusoidal parameters) less the sinusoids, plus 56 padding rows.
    The shipped config keeps UER-py's separate source and target tables (the mt processor)."""
    path = os.path.join(ROOT, "models", "transformer", "base.json")
    assert meta_count(path, vocab_size=37000, share_embedding=True) == 63_606_784 - 2 * 512 * 512 + 56 * 512
    assert meta_count(path, vocab_size=37000, tgt_vocab_size=37000) == 63_111_168 + 37056 * 512


def test_counts_agree_with_transformers_meta_init():
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        t5 = transformers.T5ForConditionalGeneration(transformers.T5Config())       # the t5-small defaults
        bart = transformers.BartForConditionalGeneration(transformers.BartConfig(
            d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
            decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072))
    assert n_params(t5) == 60_506_624 and n_params(bart) == 139_420_416

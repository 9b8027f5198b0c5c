"""ModernBERT: sliding-window local / global layers with two RoPE bases, GeGLU, bias-free pre-norm, proven
against transformers' ModernBertForMaskedLM / ModernBertModel (fp32, eager and SDPA attention): a random tiny
model converts to uer with the command-line entry point and gives the same hidden states and logits within
1e-5 on a right-padded batch longer than the window; the export is every tensor back exactly and loads
in transformers with no missing or unexpected keys.  The shipped recipes (models/modernbert/{base,large}.json,
models/mosaicbert/base.json) have the published models' parameter counts."""

import dataclasses
import json
import os

import pytest
import torch

T = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

from uer.config import config_from_dict, load_config  # noqa: E402
from uer.convert import CONVERTERS, build_uer_model  # noqa: E402
from uer.convert.cli import main as convert_main  # noqa: E402
from uer.errors import ConfigError  # noqa: E402
from uer.models import build_model  # noqa: E402
from uer.models.weights import load_weights  # noqa: E402

T.logging.set_verbosity_error()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOL = 1e-5
V = 99          # not a multiple of 64: the vocabulary padding is exercised
LENGTHS = [14, 9, 5]
SPECIAL_IDS = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2)
# Window 4: a query sees 2 tokens each side, so the 14-token row is mostly outside it.
TINY = dict(vocab_size=V, hidden_size=32, intermediate_size=40, num_hidden_layers=4, num_attention_heads=4,
            local_attention=4, global_attn_every_n_layers=3, max_position_embeddings=64, **SPECIAL_IDS)
BIASES = dict(attention_bias=True, mlp_bias=True, norm_bias=True, classifier_bias=True, tie_word_embeddings=False)

CASES = {
    "masked_lm_eager": ("ModernBertForMaskedLM", "eager", {}),
    "masked_lm_sdpa": ("ModernBertForMaskedLM", "sdpa", {}),
    "masked_lm_biases_untied": ("ModernBertForMaskedLM", "sdpa", BIASES),
    "model_eager": ("ModernBertModel", "eager", {}),
    "model_global_every_2": ("ModernBertModel", "sdpa", dict(global_attn_every_n_layers=2, num_hidden_layers=5)),
}

# answerdotai/ModernBERT-base and -large config.json (the keys that decide the model).
PUBLISHED_COMMON = dict(vocab_size=50368, hidden_activation="gelu", max_position_embeddings=8192, norm_eps=1e-5,
                        norm_bias=False, attention_bias=False, mlp_bias=False, classifier_bias=False,
                        decoder_bias=True, local_attention=128, global_attn_every_n_layers=3,
                        global_rope_theta=160000.0, local_rope_theta=10000.0, pad_token_id=50283,
                        bos_token_id=50281, eos_token_id=50282, cls_token_id=50281, sep_token_id=50282,
                        attention_dropout=0.0, mlp_dropout=0.0, embedding_dropout=0.0)
PUBLISHED = {
    "modernbert/base": dict(hidden_size=768, intermediate_size=1152, num_hidden_layers=22, num_attention_heads=12),
    "modernbert/large": dict(hidden_size=1024, intermediate_size=2624, num_hidden_layers=28, num_attention_heads=16),
}


def hf_model(cls_name, attn, extra):
    config = T.ModernBertConfig(**{**TINY, **extra}, attn_implementation=attn)
    torch.manual_seed(0)
    model = getattr(T, cls_name)(config)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():     # initialisation hides mapping bugs (unit norms, zero biases)
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            if "norm" in name and name.endswith("weight"):
                p.add_(1.0)
    return model.eval()


def batch():
    g = torch.Generator().manual_seed(1)
    src = torch.randint(3, V, (len(LENGTHS), max(LENGTHS)), generator=g)
    seg = torch.zeros_like(src)
    for b, n in enumerate(LENGTHS):
        seg[b, :n] = 1
    src[seg == 0] = 0
    return src, seg, seg > 0


def hf_outputs(model, src, keep):
    with torch.no_grad():
        o = model(input_ids=src, attention_mask=keep.long(), output_hidden_states=True)
    if getattr(o, "logits", None) is None:       # ModernBertModel
        return {"hidden": o.last_hidden_state}
    return {"hidden": o.hidden_states[-1], "mlm": o.logits}


def uer_outputs(model, kind, src, seg):
    with torch.no_grad():
        hidden = model.encoder(model.embedding(src, seg), seg)
        out = {"hidden": hidden}
        if kind == "pretrain":
            every = torch.arange(src.size(1))[None].expand(src.size(0), -1)
            out["mlm"] = model.target.mlm.logits(hidden, every)
    return out


def convert_to_uer(hf, tmp_path):
    hf_dir = tmp_path / "hf"
    hf.save_pretrained(hf_dir)
    model_path, config_path = str(tmp_path / "uer.bin"), str(tmp_path / "uer.json")
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(hf_dir),
                  "--output_model_path", model_path, "--output_config_path", config_path])
    return hf_dir, model_path, config_path


def load_uer(model_path, config, kind):
    model = build_uer_model(config, "pretrain" if kind == "pretrain" else "classifier")
    load_weights(model, model_path, allow_missing=() if kind == "pretrain" else ("head.",))
    return model.eval()


def max_diffs(ours, theirs, keep):
    return {name: float((ours[name][keep] - theirs[name][keep]).abs().max()) for name in theirs}


@pytest.mark.parametrize("case", list(CASES))
def test_parity_and_round_trip(case, tmp_path):
    cls_name, attn, extra = CASES[case]
    kind = "pretrain" if cls_name.endswith("MaskedLM") else "backbone"
    hf = hf_model(cls_name, attn, extra)
    hf_dir, model_path, config_path = convert_to_uer(hf, tmp_path)
    config = load_config(config_path)
    assert config.local_attention_window == 4 and config.local_rope_theta == 10000.0
    assert config.rope_theta == 160000.0 and not config.first_layer_attention_norm
    src, seg, keep = batch()
    theirs = hf_outputs(hf, src, keep)
    ours = load_uer(model_path, config, kind)
    diffs = max_diffs(uer_outputs(ours, kind, src, seg), theirs, keep)
    print(f"\n{case}: max |uer - hf| = {diffs}")
    assert all(d <= TOL for d in diffs.values()), diffs

    back_dir = tmp_path / "back"
    convert_main(["--from", "uer", "--to", "hf", "--input_model_path", model_path, "--config_path", config_path,
                  "--output_dir", str(back_dir), "--architecture", cls_name])
    original, exported = load_file(hf_dir / "model.safetensors"), load_file(back_dir / "model.safetensors")
    assert sorted(exported) == sorted(original)
    assert not [k for k in original if not torch.equal(original[k], exported[k])]
    reloaded, info = getattr(T, cls_name).from_pretrained(back_dir, output_loading_info=True, attn_implementation=attn)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    assert reloaded.config.layer_types == hf.config.layer_types
    assert reloaded.config.rope_parameters == hf.config.rope_parameters
    assert reloaded.config.local_attention == hf.config.local_attention
    again = hf_outputs(reloaded.eval(), src, keep)
    for name in theirs:
        assert torch.allclose(again[name], theirs[name], atol=1e-6, rtol=0), name


def test_shipped_recipe_exports_with_vocab_and_parity(tmp_path):
    """From uer: models/modernbert/base.json shrunk, random weights, exported with a vocabulary; transformers
    gives the same logits and names [CLS] / [SEP] / [PAD] in its config."""
    from uer.models.weights import save_weights
    config = json.load(open(os.path.join(ROOT, "models", "modernbert", "base.json")))
    config.update(emb_size=32, hidden_size=32, feedforward_size=40, heads_num=4, layers_num=4, max_seq_length=64,
                  local_attention_window=4)
    (tmp_path / "m.json").write_text(json.dumps(config))
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(V - 5)]
    (tmp_path / "vocab.txt").write_text("\n".join(tokens) + "\n")
    torch.manual_seed(3)
    model = build_uer_model(config_from_dict({**config, "vocab_size": V}), "pretrain").eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    save_weights(model, tmp_path / "m.bin")
    out = tmp_path / "hf"
    convert_main(["--from", "uer", "--to", "hf", "--input_model_path", str(tmp_path / "m.bin"), "--config_path",
                  str(tmp_path / "m.json"), "--vocab_path", str(tmp_path / "vocab.txt"), "--output_dir", str(out),
                  "--architecture", "modernbert"])
    hf = T.AutoModelForMaskedLM.from_pretrained(out, attn_implementation="sdpa").eval()
    assert type(hf) is T.ModernBertForMaskedLM
    assert (hf.config.pad_token_id, hf.config.cls_token_id, hf.config.sep_token_id) == (0, 2, 3)
    src, seg, keep = batch()
    diffs = max_diffs(uer_outputs(model, "pretrain", src, seg), hf_outputs(hf, src, keep), keep)
    assert all(d <= TOL for d in diffs.values()), diffs


def test_window_and_local_theta_are_used(tmp_path):
    """Without the window, or with the global base on local layers, the converted model no longer matches:
    the parity above depends on both."""
    hf = hf_model("ModernBertModel", "sdpa", {})
    _, model_path, config_path = convert_to_uer(hf, tmp_path)
    src, seg, keep = batch()
    theirs = hf_outputs(hf, src, keep)
    base = json.load(open(config_path))
    for change in ({"local_attention_window": 0, "global_attention_every_n_layers": 0, "local_rope_theta": 0.0},
                   {"local_rope_theta": 0.0}):
        ours = load_uer(model_path, config_from_dict({**base, **change}), "backbone")
        diff = max_diffs(uer_outputs(ours, "backbone", src, seg), theirs, keep)["hidden"]
        assert diff > 1e-3, (change, diff)


def test_unpadded_sliding_window_equals_padded():
    """The recipe's "unpad": the band is applied on the unpadded attention grid too (each sequence at its own
    positions): outputs and gradients equal the padded encoder's on the real tokens."""
    config = json.load(open(os.path.join(ROOT, "models", "modernbert", "base.json")))
    assert config["unpad"]
    config.update(vocab_size=V, emb_size=32, hidden_size=32, feedforward_size=40, heads_num=4, layers_num=4,
                  local_attention_window=4, dropout=0.0)
    torch.manual_seed(0)
    unpadded = build_model(config_from_dict({**config, "unpad": True}), with_target=True)
    padded = build_model(config_from_dict({**config, "unpad": False}), with_target=True)
    padded.load_state_dict(unpadded.state_dict())
    src, seg, keep = batch()
    src, seg, keep = src[1:], seg[1:], keep[1:]        # rows of 9 and 5 in 14 columns: Lmax < L
    # A random projection, not sum(h^2): after a bias-free final LayerNorm that is nearly constant, its
    # gradients only rounding noise.
    weights = torch.randn(int(keep.sum()), config["hidden_size"], generator=torch.Generator().manual_seed(2))
    outputs = []
    for model in (unpadded, padded):
        hidden = model.encode(src, seg)
        (hidden[keep] * weights).sum().backward()
        outputs.append((hidden[keep].detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                                if p.grad is not None}))
    (h_u, g_u), (h_p, g_p) = outputs
    assert float((h_u - h_p).abs().max()) < 1e-5
    assert sorted(g_u) == sorted(g_p)
    # fp32 sums in another order: within 1e-5 of each gradient's largest entry
    bad = {n: float((g_u[n] - g_p[n]).abs().max()) for n in g_u
           if float((g_u[n] - g_p[n]).abs().max()) > 1e-5 * max(1.0, float(g_p[n].abs().max()))}
    assert not bad, bad
    window_off = build_model(config_from_dict({**config, "local_attention_window": 0,
                                               "global_attention_every_n_layers": 0, "local_rope_theta": 0.0}),
                             with_target=True)
    window_off.load_state_dict(unpadded.state_dict())
    with torch.no_grad():
        assert float((window_off.encode(src, seg)[keep] - h_u).abs().max()) > 1e-3


def test_fused_halves_map_to_the_right_linears(tmp_path):
    """Wi's first half is activated (our linear_gate), its second multiplies (linear_1); Wqkv is q, k, v."""
    hf = hf_model("ModernBertModel", "eager", {})
    _, model_path, config_path = convert_to_uer(hf, tmp_path)
    ours = load_uer(model_path, load_config(config_path), "backbone")
    layer, theirs = ours.encoder.layers[1], hf.layers[1]
    gate, up = theirs.mlp.Wi.weight.chunk(2, dim=0)
    assert torch.equal(layer.feed_forward.linear_gate.weight, gate)
    assert torch.equal(layer.feed_forward.linear_1.weight, up)
    q, k, v = theirs.attn.Wqkv.weight.chunk(3, dim=0)
    assert torch.equal(layer.attention.query.weight, q) and torch.equal(layer.attention.value.weight, v)
    assert isinstance(ours.encoder.layers[0].norm_1, torch.nn.Identity)
    assert ours.encoder.layers[0].norm_2.bias is None


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_shipped_config_has_the_published_size_and_converts(name):
    hf = {**PUBLISHED_COMMON, **PUBLISHED[name]}
    with torch.device("meta"):
        reference = T.ModernBertForMaskedLM(T.ModernBertConfig(**hf))
    expected = sum(p.numel() for p in reference.parameters())
    shipped = load_config(os.path.join(ROOT, "models", name + ".json"), {"vocab_size": hf["vocab_size"]})
    with torch.device("meta"):
        ours = build_model(shipped, with_target=True)
    assert sum(p.numel() for p in ours.parameters()) == expected
    conv = CONVERTERS.get("modernbert")()
    variant = conv.variants[0]
    imported = config_from_dict(conv.config_to_uer(hf, variant))
    training_only = {"masking", "unpad"}      # the recipe's 30% masking and unpadded encoder
    differ = {f.name for f in dataclasses.fields(imported) if getattr(imported, f.name) != getattr(shipped, f.name)}
    assert differ <= training_only, differ
    again = config_from_dict(conv.config_to_uer(conv.config_to_hf(shipped, variant), variant))
    assert {f.name for f in dataclasses.fields(again) if getattr(again, f.name) != getattr(imported, f.name)} == set()


@pytest.mark.parametrize("name", ["modernbert/base", "modernbert/large", "mosaicbert/base"])
def test_shipped_recipes_load_round_trip_and_run(name):
    path = os.path.join(ROOT, "models", name + ".json")
    config = load_config(path)
    assert config.vocab_size == 0 and config_from_dict(config.to_dict(), path) == config
    small = load_config(path, {"vocab_size": 100, "layers_num": 4, "local_attention_window": 4} if "modern" in name
                        else {"vocab_size": 100, "layers_num": 2})
    with torch.device("meta"):
        assert build_model(small, with_target=True).flops_per_token(128) > 0


def test_mosaicbert_recipe():
    config = load_config(os.path.join(ROOT, "models", "mosaicbert", "base.json"), {"vocab_size": 30522})
    assert config.alibi_position_embedding and config.feed_forward == "gated"
    assert config.attention_dropout_prob == 0.0 and config.masking.mask_prob == 0.3
    with torch.device("meta"):
        model = build_model(config, with_target=True)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6) == 137      # MosaicBERT-base: 137M


def test_unsupported_hf_layouts_are_refused():
    conv = CONVERTERS.get("modernbert")()
    variant = conv.variants[0]
    hf = {**PUBLISHED_COMMON, **PUBLISHED["modernbert/base"]}
    types = ["full_attention", "full_attention"] + ["sliding_attention"] * 20
    for bad, what in (({"layer_types": types}, "layer_types"), ({"decoder_bias": False}, "decoder_bias"),
                      ({"classifier_activation": "relu"}, "classifier_activation"),
                      ({"attention_bias": True}, "mlp_bias")):
        with pytest.raises(ConfigError, match=what):
            conv.config_to_uer({**hf, **bad}, variant)
    with pytest.raises(ConfigError, match="first_layer_attention_norm"):
        conv.config_to_hf(load_config(os.path.join(ROOT, "models", "bert", "base.json"), {"vocab_size": 50,
                          "embedding": ["word"], "layernorm_positioning": "pre", "feed_forward": "gated",
                          "rotary_position_embedding": True, "target": ["mlm"], "data_processor": "mlm"}), variant)

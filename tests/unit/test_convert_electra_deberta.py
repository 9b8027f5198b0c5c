"""ELECTRA and DeBERTa-v2/v3 Hugging Face <-> uer conversion, proven numerically (the pattern of
test_convert.py): a tiny random ``transformers`` model is saved, converted to uer with the command-line
entry point, both run on the same padded batch (eval, fp32) and agree to 1e-5; the uer checkpoint is
converted back, every tensor equals the original exactly, and transformers reloads the export."""

import json
import re

import pytest
import torch

T = pytest.importorskip("transformers")
from safetensors.torch import load_file, save_file  # noqa: E402

from uer.config import load_config  # noqa: E402
from uer.convert import build_uer_model, hf_to_uer, uer_to_hf  # noqa: E402
from uer.convert.cli import main as convert_main  # noqa: E402
from uer.errors import CheckpointError, ConfigError  # noqa: E402
from uer.models.weights import load_weights  # noqa: E402

T.logging.set_verbosity_error()
TOL = 1e-5
V = 99            # not a multiple of 64: the vocabulary padding is exercised
SIZES = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}


def electra_config(embedding_size=16, hidden_size=32, **kw):
    return T.ElectraConfig(vocab_size=V, embedding_size=embedding_size, hidden_size=hidden_size,
                           max_position_embeddings=40, **{**SIZES, **kw})


def deberta_config(**kw):
    # DeBERTa-v3's settings (the transformers defaults differ: they must be spelled out).
    base = {"vocab_size": V, "hidden_size": 32, "max_position_embeddings": 40, "relative_attention": True,
            "pos_att_type": ["p2c", "c2p"], "norm_rel_ebd": "layer_norm", "share_att_key": True,
            "position_buckets": 256, "max_relative_positions": -1, "position_biased_input": False,
            "type_vocab_size": 0, **SIZES}
    base.update(kw)
    return T.DebertaV2Config(**base)


# name: (build, Auto class reloading the export, uer kind, uer targets, batch style)
CASES = {
    "electra-discriminator": (lambda: T.ElectraForPreTraining(electra_config()), "AutoModelForPreTraining",
                              "pretrain", ("rtd",), "pair"),
    "electra-discriminator-unfactorised": (
        lambda: T.ElectraForPreTraining(electra_config(embedding_size=32, hidden_act="gelu_new")),
        "AutoModelForPreTraining", "pretrain", ("rtd",), "pair"),
    "electra-generator": (lambda: T.ElectraForMaskedLM(electra_config()), "AutoModelForMaskedLM",
                          "pretrain", ("mlm",), "pair"),
    "electra-generator-untied": (lambda: T.ElectraForMaskedLM(electra_config(tie_word_embeddings=False)),
                                 "AutoModelForMaskedLM", "pretrain", ("mlm",), "pair"),
    "electra-model": (lambda: T.ElectraModel(electra_config()), "AutoModel", "backbone", (), "pair"),
    "deberta-v3-mlm": (lambda: T.DebertaV2ForMaskedLM(deberta_config()), "AutoModelForMaskedLM",
                       "pretrain", ("mlm",), "single"),
    "deberta-v3-mlm-untied": (lambda: T.DebertaV2ForMaskedLM(deberta_config(tie_word_embeddings=False)),
                              "AutoModelForMaskedLM", "pretrain", ("mlm",), "single"),
    "deberta-v2-mlm-pos-and-types": (
        lambda: T.DebertaV2ForMaskedLM(deberta_config(position_biased_input=True, type_vocab_size=2)),
        "AutoModelForMaskedLM", "pretrain", ("mlm",), "pair"),
    "deberta-v3-model": (lambda: T.DebertaV2Model(deberta_config()), "AutoModel", "backbone", (), "single"),
    "deberta-v3-classification": (
        lambda: T.DebertaV2ForSequenceClassification(deberta_config(num_labels=3, pooler_hidden_act="tanh")),
        "AutoModelForSequenceClassification", "classifier", (), "single"),
}


def randomize(model, seed=0):
    """Initialisation hides mapping bugs (unit norms, zero biases): make every parameter distinct."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            if p.dim() == 1 and "layernorm" in name.lower() and name.endswith("weight"):
                p.add_(1.0)
        # An untied legacy DeBERTa head stores its bias twice (bias, decoder.bias); its forward uses
        # decoder.bias, uer keeps one tensor and writes it to both (as for BERT).
        head = getattr(getattr(model, "cls", None), "predictions", None)
        if head is not None and head.decoder.bias is not head.bias:
            head.bias.copy_(head.decoder.bias)
    return model.eval()


def make_batch(style, seed=1):
    """Right-padded (B, L) ids; uer segments (0 padding, 1, 2) and the matching HF inputs."""
    g = torch.Generator().manual_seed(seed)
    lengths = [10, 7, 4]
    src = torch.randint(3, V, (len(lengths), max(lengths)), generator=g)
    seg = torch.zeros_like(src)
    for b, n in enumerate(lengths):
        seg[b, :n] = 1
        if style == "pair":
            seg[b, n // 2: n] = 2
    keep = seg > 0
    src[~keep] = 0
    hf = {"input_ids": src, "attention_mask": keep.long()}
    if style == "pair":
        hf["token_type_ids"] = (seg == 2).long()
    positions = torch.stack([torch.randperm(n, generator=g)[:3] for n in lengths])
    return src, seg, keep, hf, positions


def uer_outputs(model, kind, targets, src, seg, positions):
    with torch.no_grad():
        hidden = model.encoder(model.embedding(src, seg), seg)
        out = {"hidden": hidden}
        if kind == "classifier":
            out["logits"] = model.head(hidden, {"seg": seg})
        if "mlm" in targets:
            out["mlm"] = model.target.mlm.logits(hidden, positions)
        if "rtd" in targets:
            rtd = model.target.rtd
            out["rtd"] = rtd.linear_2(rtd.act(rtd.linear_1(hidden))).squeeze(-1)
        return out


def hf_outputs(model, kind, targets, batch, positions):
    with torch.no_grad():
        o = model(**batch, output_hidden_states=True)
    out = {"hidden": o.hidden_states[-1]}
    if kind == "classifier":
        out["logits"] = o.logits
    if "mlm" in targets:
        out["mlm"] = o.logits.gather(1, positions.unsqueeze(-1).expand(-1, -1, o.logits.size(-1)))
    if "rtd" in targets:
        out["rtd"] = o.logits
    return out


def max_diffs(ours, theirs, keep):
    diffs = {}
    for name in theirs:
        a, b = ours[name], theirs[name]
        if name in ("hidden", "rtd"):       # padding positions differ by design
            a, b = a[keep], b[keep]
        diffs[name] = float((a - b).abs().max())
    return diffs


def to_uer(hf_dir, tmp_path, kind):
    model_path, config_path = str(tmp_path / "uer.bin"), str(tmp_path / "uer.json")
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(hf_dir),
                  "--output_model_path", model_path, "--output_config_path", config_path])
    model = build_uer_model(load_config(config_path), kind)
    load_weights(model, model_path)
    return model.eval(), model_path, config_path


@pytest.mark.parametrize("case", list(CASES))
def test_parity_and_round_trip(case, tmp_path):
    build, auto_class, kind, targets, style = CASES[case]
    torch.manual_seed(0)
    hf_model = randomize(build())
    hf_dir, back_dir = tmp_path / "hf", tmp_path / "back"
    hf_model.save_pretrained(hf_dir)
    src, seg, keep, batch, positions = make_batch(style)

    ours, model_path, config_path = to_uer(hf_dir, tmp_path, kind)
    theirs = hf_outputs(hf_model, kind, targets, batch, positions)
    diffs = max_diffs(uer_outputs(ours, kind, targets, src, seg, positions), theirs, keep)
    print(f"\n{case}: max |uer - hf| = {diffs}")
    assert all(d <= TOL for d in diffs.values()), diffs

    family = hf_model.config.model_type
    convert_main(["--from", "uer", "--to", "hf", "--input_model_path", model_path, "--config_path", config_path,
                  "--output_dir", str(back_dir), "--architecture", family])
    original, exported = load_file(hf_dir / "model.safetensors"), load_file(back_dir / "model.safetensors")
    assert sorted(exported) == sorted(original)
    unequal = [k for k in original if not torch.equal(original[k], exported[k])]
    assert not unequal, unequal
    reloaded, info = getattr(T, auto_class).from_pretrained(back_dir, output_loading_info=True)
    assert type(reloaded) is type(hf_model)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    again = hf_outputs(reloaded.eval(), kind, targets, batch, positions)
    for name in theirs:
        assert torch.allclose(again[name], theirs[name], atol=1e-6, rtol=0), name


def test_deberta_non_legacy_mlm_head(tmp_path):
    """The lm_predictions.lm_head.* head ("legacy": false): imported exactly, also when config.json
    does not say so; exported in the legacy layout, which gives the same logits."""
    torch.manual_seed(0)
    hf_model = randomize(T.DebertaV2ForMaskedLM(deberta_config(legacy=False)))
    hf_model.save_pretrained(tmp_path / "hf")
    assert any(k.startswith("lm_predictions.") for k in load_file(tmp_path / "hf" / "model.safetensors"))
    # Microsoft's config.json files do not say "legacy": false; the weight names decide.
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    del config["legacy"]
    (tmp_path / "hf" / "config.json").write_text(json.dumps(config))
    src, seg, keep, batch, positions = make_batch("single")
    ours, model_path, config_path = to_uer(tmp_path / "hf", tmp_path, "pretrain")
    theirs = hf_outputs(hf_model, "pretrain", ("mlm",), batch, positions)
    diffs = max_diffs(uer_outputs(ours, "pretrain", ("mlm",), src, seg, positions), theirs, keep)
    assert all(d <= TOL for d in diffs.values()), diffs
    convert_main(["--from", "uer", "--to", "hf", "--input_model_path", model_path, "--config_path", config_path,
                  "--output_dir", str(tmp_path / "back"), "--architecture", "deberta-v2"])
    reloaded = T.AutoModelForMaskedLM.from_pretrained(tmp_path / "back").eval()
    again = hf_outputs(reloaded, "pretrain", ("mlm",), batch, positions)
    assert torch.allclose(again["mlm"], theirs["mlm"], atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------------
# Errors: unknown parameters listed, unrepresentable settings and heads refused by name
# ------------------------------------------------------------------------------------------------

def rewrite(directory, change):
    path = directory / "model.safetensors"
    state = load_file(path)
    change(state)
    save_file(state, path, metadata={"format": "pt"})


@pytest.mark.parametrize("build,extra", [
    (lambda: T.ElectraForPreTraining(electra_config()), "electra.encoder.layer.1.attention.self.rel_bias"),
    (lambda: T.DebertaV2ForMaskedLM(deberta_config()), "deberta.encoder.layer.1.attention.self.pos_key_proj.weight"),
])
def test_unknown_parameter_is_listed(build, extra, tmp_path):
    build().save_pretrained(tmp_path)
    rewrite(tmp_path, lambda s: s.update({extra: torch.zeros(2)}))
    with pytest.raises(CheckpointError, match="no place in the uer model: " + extra.replace(".", r"\.")):
        hf_to_uer(str(tmp_path))


@pytest.mark.parametrize("key,value", [
    ("share_att_key", False), ("pos_att_type", ["c2p"]), ("norm_rel_ebd", "none"), ("conv_kernel_size", 3),
    ("position_buckets", 128), ("relative_attention", False), ("embedding_size", 16),
    ("max_relative_positions", 20),
])
def test_unsupported_deberta_setting_is_refused(key, value, tmp_path):
    T.DebertaV2Model(deberta_config()).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config[key] = value
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=re.escape(f"'{key}' is {value!r}")):
        hf_to_uer(str(tmp_path))


def test_deberta_classifier_needs_tanh_pooler(tmp_path):
    T.DebertaV2ForSequenceClassification(deberta_config()).save_pretrained(tmp_path)     # gelu pooler
    with pytest.raises(ConfigError, match="'pooler_hidden_act' is 'gelu'.*tanh"):
        hf_to_uer(str(tmp_path))


def test_electra_classifier_is_refused_with_the_reason(tmp_path):
    T.ElectraForSequenceClassification(electra_config()).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="dense -> GELU -> out_proj.*dense -> tanh"):
        hf_to_uer(str(tmp_path))
    # The backbone still converts when the head is dropped on purpose.
    out = hf_to_uer(str(tmp_path), architecture="ElectraModel", discard=("classifier.",))
    assert out.variant.kind == "backbone"
    # A uer classifier has no ELECTRA class either.
    config = load_config_dict(out.config, labels_num=2)
    state = dict(out.state, **{k: v for k, v in build_uer_model(config, "classifier").state_dict().items()
                               if k.startswith("head.")})
    with pytest.raises(ConfigError, match="dense -> GELU"):
        uer_to_hf(state, config, "electra")


def load_config_dict(config, **changes):
    import dataclasses
    return dataclasses.replace(config, **changes)


def test_electra_generator_needs_gelu(tmp_path):
    T.ElectraForMaskedLM(electra_config(hidden_act="relu")).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="erf GELU"):
        hf_to_uer(str(tmp_path))


# ------------------------------------------------------------------------------------------------
# A whole ELECTRA pretrainer: HF discriminator + HF generator <-> one uer ElectraPretrainer
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shared", [True, False])
def test_electra_pretrainer_from_two_directories(shared, tmp_path):
    from uer.convert.api import electra_pretrainer_to_hf, hf_to_electra_pretrainer
    from uer.models import build_model
    from uer.models.weights import read_weights, save_state

    torch.manual_seed(0)
    disc = randomize(T.ElectraForPreTraining(electra_config(intermediate_size=40)))
    # The generator: half the width, heads and FFN, one layer fewer, the same embedding width.
    gen = randomize(T.ElectraForMaskedLM(electra_config(hidden_size=16, num_attention_heads=1,
                                                        intermediate_size=20, num_hidden_layers=1)), seed=1)
    if shared:      # ELECTRA trains both with one embedding module
        gen.electra.embeddings.load_state_dict(disc.electra.embeddings.state_dict())
    disc.save_pretrained(tmp_path / "disc")
    gen.save_pretrained(tmp_path / "gen")

    result = hf_to_electra_pretrainer(str(tmp_path / "disc"), str(tmp_path / "gen"))
    c = result.config
    assert (c.pretrainer, c.rtd.generator_size_multiplier, c.rtd.generator_layers_num) == ("electra", 0.5, 1)
    assert c.rtd.embedding_sharing == ("shared" if shared else "none")
    save_state(result.state, tmp_path / "electra.bin")
    model = build_model(c)
    load_weights(model, str(tmp_path / "electra.bin"))
    model.eval()
    assert (model.discriminator.embedding is model.generator.embedding) == shared

    src, seg, keep, batch, positions = make_batch("pair")
    with torch.no_grad():
        rtd = model.discriminator.target.rtd
        hidden = model.discriminator.encode(src, seg)
        ours_rtd = rtd.linear_2(rtd.act(rtd.linear_1(hidden))).squeeze(-1)
        ours_mlm = model.generator.target.mlm.logits(model.generator.encode(src, seg), positions)
    theirs_rtd = hf_outputs(disc, "pretrain", ("rtd",), batch, positions)["rtd"]
    theirs_mlm = hf_outputs(gen, "pretrain", ("mlm",), batch, positions)["mlm"]
    assert float((ours_rtd - theirs_rtd)[keep].abs().max()) <= TOL
    assert float((ours_mlm - theirs_mlm).abs().max()) <= TOL

    # Back: two Hugging Face state dicts equal to the original files, tensor for tensor.
    d, g = electra_pretrainer_to_hf(read_weights(tmp_path / "electra.bin"), c)
    assert d.variant.hf_class == "ElectraForPreTraining" and g.variant.hf_class == "ElectraForMaskedLM"
    for out, directory in ((d, "disc"), (g, "gen")):
        original = load_file(tmp_path / directory / "model.safetensors")
        assert sorted(out.state) == sorted(original)
        assert [k for k in original if not torch.equal(original[k], out.state[k])] == []
        assert out.hf_config["hidden_size"] == (32 if directory == "disc" else 16)


def test_electra_generator_of_another_shape_is_refused(tmp_path):
    from uer.convert.api import hf_to_electra_pretrainer
    T.ElectraForPreTraining(electra_config()).save_pretrained(tmp_path / "disc")
    # Half the width but the same number of heads: not what generator_size_multiplier derives.
    T.ElectraForMaskedLM(electra_config(hidden_size=16)).save_pretrained(tmp_path / "gen")
    with pytest.raises(ConfigError, match="heads_num: generator 2, derived 1"):
        hf_to_electra_pretrainer(str(tmp_path / "disc"), str(tmp_path / "gen"))


# ------------------------------------------------------------------------------------------------
# From uer models built from the shipped configs: export, load in transformers, same outputs
# ------------------------------------------------------------------------------------------------

SHRINK = {"vocab_size": 70, "hidden_size": 32, "emb_size": 32, "feedforward_size": 48, "heads_num": 2,
          "layers_num": 2, "max_seq_length": 40, "dropout": 0.0}


def perturb(model, seed=3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


def test_uer_deberta_v3_exports_to_transformers(tmp_path):
    from uer.config import save_config
    from uer.models.weights import save_weights
    config = load_config("models/deberta_v3_mlm/xsmall.json", SHRINK)
    model = perturb(build_uer_model(config, "pretrain"))
    save_weights(model, tmp_path / "m.bin")
    save_config(config, str(tmp_path / "m.json"))
    convert_main(["--from", "uer", "--to", "hf", "--input_model_path", str(tmp_path / "m.bin"),
                  "--config_path", str(tmp_path / "m.json"), "--output_dir", str(tmp_path / "hf"),
                  "--architecture", "deberta-v2"])
    hf, info = T.AutoModelForMaskedLM.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert type(hf) is T.DebertaV2ForMaskedLM
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    src, seg, keep, batch, positions = make_batch("single")
    src.clamp_(max=69)
    theirs = hf_outputs(hf.eval(), "pretrain", ("mlm",), batch, positions)
    diffs = max_diffs(uer_outputs(model, "pretrain", ("mlm",), src, seg, positions), theirs, keep)
    assert all(d <= TOL for d in diffs.values()), diffs


def test_uer_electra_pretrainer_exports_to_transformers():
    from uer.convert.api import electra_pretrainer_to_hf
    from uer.models import build_model
    config = load_config("models/electra/small.json", {**SHRINK, "emb_size": 16})   # factorised, as small
    model = perturb(build_model(config))
    disc, gen = electra_pretrainer_to_hf(model.state_dict(), config)
    src, seg, keep, batch, positions = make_batch("pair")
    src.clamp_(max=69)
    for out, cls, part, target in ((disc, T.ElectraForPreTraining, model.discriminator, "rtd"),
                                   (gen, T.ElectraForMaskedLM, model.generator, "mlm")):
        hf = cls(T.ElectraConfig(**out.hf_config)).eval()
        missing, unexpected = hf.load_state_dict(out.state, strict=False)
        assert not unexpected and set(missing) <= {"generator_lm_head.weight"}   # tied to the embedding
        hf.tie_weights()
        theirs = hf_outputs(hf, "pretrain", (target,), batch, positions)
        diffs = max_diffs(uer_outputs(part, "pretrain", (target,), src, seg, positions), theirs, keep)
        assert all(d <= TOL for d in diffs.values()), (target, diffs)


@pytest.mark.parametrize("emd", [True, False])
def test_uer_deberta_v3_rtd_recipe_exports_to_transformers(emd):
    """The DeBERTaV3 recipe (ELECTRA-style, GDES): the discriminator exports as DebertaV2Model (GDES
    tables summed), the generator as DebertaV2ForMaskedLM unless it uses the enhanced mask decoder."""
    from uer.convert.api import electra_pretrainer_to_hf
    from uer.models import build_model
    config = load_config("models/deberta_v3/xsmall.json", {**SHRINK, "enhanced_mask_decoder": emd,
                                                           "rtd": {"generator_layers_num": 1}})
    assert config.rtd.embedding_sharing == "gdes"
    model = perturb(build_model(config))
    disc, gen = electra_pretrainer_to_hf(model.state_dict(), config)
    assert disc.variant.hf_class == "DebertaV2Model" and any("without its rtd head" in n for n in disc.notes)
    assert (gen is None) == emd
    src, seg, keep, batch, positions = make_batch("single")
    src.clamp_(max=69)
    parts = [(disc, T.DebertaV2Model, model.discriminator, "backbone", ())]
    if gen is not None:
        parts.append((gen, T.DebertaV2ForMaskedLM, model.generator, "pretrain", ("mlm",)))
    for out, cls, part, kind, targets in parts:
        hf = cls(T.DebertaV2Config(**out.hf_config)).eval()
        missing, unexpected = hf.load_state_dict(out.state, strict=False)
        assert not unexpected and set(missing) <= {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
        hf.tie_weights()
        theirs = hf_outputs(hf, kind, targets, batch, positions)
        diffs = max_diffs(uer_outputs(part, kind, targets, src, seg, positions), theirs, keep)
        assert all(d <= TOL for d in diffs.values()), (kind, diffs)


def test_deberta_mlm_with_enhanced_mask_decoder_is_refused():
    config = load_config("models/deberta_v3_mlm/xsmall.json", {**SHRINK, "enhanced_mask_decoder": True})
    state = build_uer_model(config, "pretrain").state_dict()
    with pytest.raises(ConfigError, match="'enhanced_mask_decoder' is true.*DebertaV2Model"):
        uer_to_hf(state, config, "deberta-v2")
    out = uer_to_hf({k: v for k, v in state.items() if not k.startswith("target.")}, config, "deberta-v2")
    assert out.variant.hf_class == "DebertaV2Model"

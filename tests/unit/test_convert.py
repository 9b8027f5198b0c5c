"""Hugging Face <-> uer conversion, proven numerically.

For each architecture: a small random ``transformers`` model is saved, converted to uer with the
command-line entry point, and both models run on the same padded batch (eval, fp32): hidden states
and every head's logits agree to 1e-5.  The uer checkpoint is converted back and every tensor must
equal the original exactly; the re-exported directory loads with ``AutoModel*.from_pretrained``
(no missing or unexpected keys) and gives the same outputs.
"""

import json
import os

import pytest
import torch

T = pytest.importorskip("transformers")
from safetensors.torch import load_file, save_file  # noqa: E402

from uer.config import config_from_dict, load_config  # noqa: E402
from uer.convert import CONVERTERS, build_uer_model, hf_to_uer, uer_to_hf  # noqa: E402
from uer.convert.cli import bert_shim_main, main as convert_main  # noqa: E402
from uer.errors import CheckpointError, ConfigError  # noqa: E402
from uer.models.weights import load_weights, read_weights, save_weights  # noqa: E402

T.logging.set_verbosity_error()
TOL = 1e-5
V = 99            # not a multiple of 64: the vocabulary padding is exercised
SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)


def bert_config(**kw):
    return T.BertConfig(vocab_size=V, max_position_embeddings=40, **SIZES, **kw)


def roberta_config(cls=T.RobertaConfig, **kw):
    kw = {"type_vocab_size": 1, **kw}
    return cls(vocab_size=V, max_position_embeddings=42, pad_token_id=1, **SIZES, **kw)


def albert_config(**kw):
    return T.AlbertConfig(vocab_size=V, embedding_size=16, max_position_embeddings=40, **SIZES, **kw)


def gpt2_config(**kw):
    return T.GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=2, n_positions=40,
                        bos_token_id=0, eos_token_id=0, **kw)


# name: (build the HF model, the Auto class that must reload the export, uer kind, targets, batch style)
CASES = {
    "bert-pretraining": (lambda: T.BertForPreTraining(bert_config()), "AutoModelForPreTraining",
                         "pretrain", ("mlm", "sp"), "pair"),
    "bert-mlm": (lambda: T.BertForMaskedLM(bert_config()), "AutoModelForMaskedLM", "pretrain", ("mlm",), "pair"),
    "bert-mlm-untied": (lambda: T.BertForMaskedLM(bert_config(tie_word_embeddings=False)), "AutoModelForMaskedLM",
                        "pretrain", ("mlm",), "pair"),
    "bert-model": (lambda: T.BertModel(bert_config()), "AutoModel", "backbone", (), "pair"),
    "bert-classification": (lambda: T.BertForSequenceClassification(bert_config(num_labels=3)),
                            "AutoModelForSequenceClassification", "classifier", (), "pair"),
    "roberta-mlm": (lambda: T.RobertaForMaskedLM(roberta_config()), "AutoModelForMaskedLM",
                    "pretrain", ("mlm",), "single"),
    "roberta-mlm-2-types": (lambda: T.RobertaForMaskedLM(roberta_config(type_vocab_size=2)),
                            "AutoModelForMaskedLM", "pretrain", ("mlm",), "single"),
    "roberta-classification": (lambda: T.RobertaForSequenceClassification(roberta_config(num_labels=2)),
                               "AutoModelForSequenceClassification", "classifier", (), "single"),
    "xlm-roberta-mlm": (lambda: T.XLMRobertaForMaskedLM(roberta_config(T.XLMRobertaConfig)),
                        "AutoModelForMaskedLM", "pretrain", ("mlm",), "single"),
    "albert-pretraining": (lambda: T.AlbertForPreTraining(albert_config()), "AutoModelForPreTraining",
                           "pretrain", ("mlm", "sp"), "pair"),
    "albert-classification": (lambda: T.AlbertForSequenceClassification(albert_config(num_labels=2)),
                              "AutoModelForSequenceClassification", "classifier", (), "pair"),
    "gpt2-lm": (lambda: T.GPT2LMHeadModel(gpt2_config()), "AutoModelForCausalLM", "pretrain", ("lm",), "single"),
    "gpt2-lm-untied": (lambda: T.GPT2LMHeadModel(gpt2_config(tie_word_embeddings=False)),
                       "AutoModelForCausalLM", "pretrain", ("lm",), "single"),
}


def randomize(model, seed=0):
    """Initialisation hides mapping bugs (unit norms, zero biases): make every parameter distinct."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            if p.dim() == 1 and ("norm" in name.lower() or ".ln_" in name) and name.endswith("weight"):
                p.add_(1.0)
        # An untied BERT head stores its bias twice (transformers 4 files hold one tensor under both names).
        head = getattr(getattr(model, "cls", None), "predictions", None)
        if head is not None and head.decoder.bias is not head.bias:
            head.bias.copy_(head.decoder.bias)
        # RoBERTa's position rows before padding_idx + 1 serve padding only; uer does not keep them.
        for name, p in model.named_parameters():
            if name.endswith("position_embeddings.weight") and getattr(model.config, "model_type", "") in (
                    "roberta", "xlm-roberta"):
                p[: model.config.pad_token_id + 1] = 0
    return model.eval()


def make_batch(style, pad_id, seed=1):
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
    src[~keep] = pad_id
    hf = {"input_ids": src, "attention_mask": keep.long()}
    if style == "pair":
        hf["token_type_ids"] = (seg == 2).long()
    positions = torch.stack([torch.randperm(n, generator=g)[:3] for n in lengths])
    return src, seg, keep, hf, positions


def uer_outputs(model, kind, targets, src, seg, positions):
    with torch.no_grad():
        if kind == "classifier" or kind == "backbone":
            hidden = model.encoder(model.embedding(src, seg), seg)
            out = {"hidden": hidden}
            if kind == "classifier":
                out["logits"] = model.head(hidden, {"seg": seg})
            else:
                out["pooler"] = torch.tanh(model.head.linear_1(hidden[:, 0]))
            return out
        hidden = model.encode(src, seg)
        out = {"hidden": hidden}
        if "mlm" in targets:
            out["mlm"] = model.target.mlm.logits(hidden, positions)
        if "sp" in targets:
            sp = model.target.sp
            out["sp"] = sp.linear_2(torch.tanh(sp.linear_1(hidden[:, 0])))
        if "lm" in targets:
            out["lm"] = model.target.lm.logits(hidden)
        return out


def hf_outputs(model, kind, targets, batch, positions):
    with torch.no_grad():
        o = model(**batch, output_hidden_states=True)
    out = {"hidden": o.hidden_states[-1]}
    if kind == "classifier":
        out["logits"] = o.logits
    elif kind == "backbone":
        out["pooler"] = o.pooler_output
    for t in targets:
        if t == "mlm":
            logits = o.prediction_logits if getattr(o, "prediction_logits", None) is not None else o.logits
            out["mlm"] = logits.gather(1, positions.unsqueeze(-1).expand(-1, -1, logits.size(-1)))
        elif t == "sp":
            out["sp"] = o.seq_relationship_logits if getattr(o, "seq_relationship_logits", None) is not None \
                else o.sop_logits
        elif t == "lm":
            out["lm"] = o.logits
    return out


def max_diffs(ours, theirs, keep):
    diffs = {}
    for name in theirs:
        a, b = ours[name], theirs[name]
        if name in ("hidden", "lm"):        # padding positions differ by design (HF has no pad segment)
            a, b = a[keep], b[keep]
        diffs[name] = float((a - b).abs().max())
    return diffs


def load_uer(model_path, config_path, kind):
    config = load_config(config_path)
    model = build_uer_model(config, "classifier" if kind == "backbone" else kind)
    if kind == "backbone":   # the pooler arrives as the classifier head's first layer
        load_weights(model, model_path, allow_missing=("head.linear_2.",))
    else:
        load_weights(model, model_path)
    return model.eval()


@pytest.mark.parametrize("case", list(CASES))
def test_parity_and_round_trip(case, tmp_path):
    build, auto_class, kind, targets, style = CASES[case]
    torch.manual_seed(0)
    hf_model = randomize(build())
    hf_dir, back_dir = tmp_path / "hf", tmp_path / "back"
    hf_model.save_pretrained(hf_dir)
    pad_id = hf_model.config.pad_token_id if hf_model.config.pad_token_id is not None else 0
    src, seg, keep, batch, positions = make_batch(style, pad_id)

    # HF -> uer through the command line entry point
    model_path, config_path = str(tmp_path / "uer.bin"), str(tmp_path / "uer.json")
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(hf_dir),
                  "--output_model_path", model_path, "--output_config_path", config_path])
    ours = load_uer(model_path, config_path, kind)
    theirs = hf_outputs(hf_model, kind, targets, batch, positions)
    diffs = max_diffs(uer_outputs(ours, kind, targets, src, seg, positions), theirs, keep)
    print(f"\n{case}: max |uer - hf| = {diffs}")
    assert all(d <= TOL for d in diffs.values()), diffs

    # uer -> HF: every tensor back exactly, and transformers loads the directory
    family = CONVERTERS.get(hf_model.config.model_type).family
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


# ------------------------------------------------------------------------------------------------
# From a uer model: export, reload in transformers, import again
# ------------------------------------------------------------------------------------------------

TINY_UER = {"embedding": ["word", "pos", "seg"], "vocab_size": 70, "emb_size": 32, "hidden_size": 32,
            "feedforward_size": 48, "heads_num": 4, "layers_num": 2, "max_seq_length": 24, "dropout": 0.0,
            "target": ["mlm", "sp"], "tie_weights": True, "layernorm_eps": 1e-12}


def test_uer_bert_exports_with_vocab_and_parity(tmp_path):
    torch.manual_seed(3)
    config = config_from_dict(TINY_UER)
    model = build_uer_model(config, "pretrain").eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model_path = tmp_path / "m.bin"
    save_weights(model, model_path)
    cfg = dict(TINY_UER)
    del cfg["vocab_size"]          # as shipped configs: the size comes from the vocabulary
    (tmp_path / "m.json").write_text(json.dumps(cfg))
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(65)]
    (tmp_path / "vocab.txt").write_text("\n".join(tokens) + "\n")
    out = tmp_path / "hf"
    result = convert_main(["--from", "uer", "--to", "hf", "--input_model_path", str(model_path),
                           "--config_path", str(tmp_path / "m.json"), "--vocab_path", str(tmp_path / "vocab.txt"),
                           "--output_dir", str(out), "--architecture", "bert"])
    assert result.variant.hf_class == "BertForPreTraining"
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForPreTraining"]
    hf = T.AutoModelForPreTraining.from_pretrained(out).eval()
    tok = T.AutoTokenizer.from_pretrained(out)
    assert tok.convert_tokens_to_ids(["[CLS]", "w3"]) == [2, 8]
    src, seg, keep, batch, positions = make_batch("pair", 0)
    src.clamp_(max=69)
    batch["input_ids"] = src
    theirs = hf_outputs(hf, "pretrain", ("mlm", "sp"), batch, positions)
    ours = uer_outputs(model, "pretrain", ("mlm", "sp"), src, seg, positions)
    diffs = max_diffs(ours, theirs, keep)
    assert all(d <= TOL for d in diffs.values()), diffs
    # Back to uer: equal except the rows HF has no slot for (padding segment, padded vocabulary rows).
    back = hf_to_uer(str(out)).state
    state = model.state_dict()
    assert sorted(back) == sorted(state)
    for k in state:
        a, b = state[k], back[k]
        if k == "embedding.seg.embedding.weight":
            a, b = a[1:], b[1:]
        elif k in ("embedding.word.embedding.weight", "target.mlm.output_bias"):
            a, b = a[:70], b[:70]
        assert torch.equal(a, b), k


# ------------------------------------------------------------------------------------------------
# Nothing is dropped silently
# ------------------------------------------------------------------------------------------------

@pytest.fixture
def bert_dir(tmp_path):
    torch.manual_seed(0)
    model = randomize(T.BertForPreTraining(bert_config()))
    model.save_pretrained(tmp_path / "hf")
    return tmp_path / "hf"


def rewrite(directory, change):
    path = directory / "model.safetensors"
    state = load_file(path)
    change(state)
    save_file(state, path, metadata={"format": "pt"})


def test_unknown_hf_parameter_is_listed(bert_dir):
    rewrite(bert_dir, lambda s: s.update({"bert.encoder.layer.1.attention.self.rel_bias.weight": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match=r"no place in the uer model: bert\.encoder\.layer\.1\.attention"
                                              r"\.self\.rel_bias\.weight"):
        hf_to_uer(str(bert_dir))


def test_missing_hf_parameter_is_listed(bert_dir):
    rewrite(bert_dir, lambda s: s.pop("bert.encoder.layer.1.output.dense.bias"))
    with pytest.raises(CheckpointError, match=r"missing from the Hugging Face weights: "
                                              r"bert\.encoder\.layer\.1\.output\.dense\.bias\.") as e:
        hf_to_uer(str(bert_dir))
    assert "no place" not in str(e.value)


def test_leftover_uer_parameter_is_listed(bert_dir):
    converted = hf_to_uer(str(bert_dir))
    converted.state["encoder.layers.0.attention.extra"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"encoder\.layers\.0\.attention\.extra"):
        uer_to_hf(converted.state, converted.config, "bert")


def test_untied_copy_must_equal_its_source(bert_dir):
    rewrite(bert_dir, lambda s: s.update({"cls.predictions.decoder.weight":
                                          s["bert.embeddings.word_embeddings.weight"] + 1}))
    with pytest.raises(CheckpointError, match="cls.predictions.decoder.weight should be a copy"):
        hf_to_uer(str(bert_dir))


def test_file_holding_more_than_the_declared_class(bert_dir):
    config = json.loads((bert_dir / "config.json").read_text())
    config["architectures"] = ["BertForMaskedLM"]       # as bert-base-uncased: the file holds NSP too
    (bert_dir / "config.json").write_text(json.dumps(config))
    converted = hf_to_uer(str(bert_dir))                # the class that maps every tensor, with a note
    assert converted.variant.hf_class == "BertForPreTraining" and converted.config.target == ["mlm", "sp"]
    assert "names BertForMaskedLM but the file holds a whole BertForPreTraining" in converted.notes[-1]
    with pytest.raises(CheckpointError, match=r"bert\.pooler\.dense\.bias.*cls\.seq_relationship\.bias"):
        hf_to_uer(str(bert_dir), architecture="BertForMaskedLM")
    converted = hf_to_uer(str(bert_dir), architecture="BertForMaskedLM",
                          discard=("bert.pooler.", "cls.seq_relationship."))
    assert converted.config.target == ["mlm"] and not any(k.startswith("target.sp") for k in converted.state)
    assert "cls.seq_relationship.weight" in converted.notes[-1]


def test_uer_checkpoint_to_a_class_it_does_not_fit(bert_dir):
    converted = hf_to_uer(str(bert_dir))
    with pytest.raises(ConfigError, match="RobertaForMaskedLM|no roberta model class"):
        uer_to_hf(converted.state, converted.config, "roberta")
    with pytest.raises(ConfigError, match="needs 'pre'"):
        uer_to_hf(converted.state, converted.config, "gpt2")
    out = uer_to_hf(converted.state, converted.config, "bert", discard=("target.sp.",))
    assert out.variant.hf_class == "BertForMaskedLM"


def test_unknown_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    with pytest.raises(ConfigError, match="model_type 'mamba' has no uer converter; supported model types: ") as e:
        hf_to_uer(str(tmp_path))
    for model_type in ("albert", "bart", "bert", "deberta-v2", "electra", "gpt2", "marian", "pegasus", "roberta", "t5",
                       "xlm-roberta"):
        assert model_type in str(e.value)


def test_unsupported_option_is_refused(tmp_path):
    model = T.BertModel(bert_config(position_embedding_type="relative_key"))
    model.save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="position_embedding_type"):
        hf_to_uer(str(tmp_path))


# ------------------------------------------------------------------------------------------------
# Old file layouts and the UER-py shim
# ------------------------------------------------------------------------------------------------

def test_legacy_bin_with_gamma_beta_and_buffers(bert_dir, tmp_path):
    """Old pytorch_model.bin files: LayerNorm gamma/beta, persistent position_ids, the tied decoder
    weights stored, read with weights_only=True."""
    state = load_file(bert_dir / "model.safetensors")
    legacy = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
              for k, v in state.items()}
    legacy["bert.embeddings.position_ids"] = torch.arange(40)[None]
    legacy["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"].clone()
    legacy["cls.predictions.decoder.bias"] = state["cls.predictions.bias"].clone()
    old = tmp_path / "old"
    old.mkdir()
    torch.save(legacy, old / "pytorch_model.bin")
    (old / "config.json").write_text((bert_dir / "config.json").read_text())
    a, b = hf_to_uer(str(old)), hf_to_uer(str(bert_dir))
    assert sorted(a.state) == sorted(b.state) and all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    assert any("position_ids" in n for n in a.notes)


def test_gpt2_file_saved_from_the_base_model(tmp_path):
    """The original gpt2 weights: no "transformer." prefix and the causal-mask buffers stored."""
    torch.manual_seed(0)
    model = randomize(T.GPT2LMHeadModel(gpt2_config()))
    model.save_pretrained(tmp_path / "new")
    state = {k[len("transformer."):]: v for k, v in load_file(tmp_path / "new" / "model.safetensors").items()}
    for i in range(2):
        state[f"h.{i}.attn.bias"] = torch.ones(1, 1, 40, 40).tril()
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    (tmp_path / "old").mkdir()
    save_file(state, tmp_path / "old" / "model.safetensors", metadata={"format": "pt"})
    (tmp_path / "old" / "config.json").write_text((tmp_path / "new" / "config.json").read_text())
    a, b = hf_to_uer(str(tmp_path / "old")), hf_to_uer(str(tmp_path / "new"))
    assert sorted(a.state) == sorted(b.state) and all(torch.equal(a.state[k], b.state[k]) for k in a.state)


def test_uer_py_shim(bert_dir, tmp_path):
    out = tmp_path / "shim.bin"
    result = bert_shim_main(["--input_model_path", str(bert_dir / "model.safetensors"),
                             "--output_model_path", str(out), "--layers_num", "2", "--target", "bert"])
    assert result.variant.hf_class == "BertForPreTraining"
    assert load_config(str(tmp_path / "shim.json")).layers_num == 2
    assert sorted(read_weights(out)) == sorted(result.state)
    with pytest.raises(SystemExit) as e:      # sizes come from config.json, never from the flag
        bert_shim_main(["--input_model_path", str(bert_dir), "--output_model_path", str(out), "--layers_num", "12"])
    assert e.value.code == 2


def test_cli_needs_its_direction_flags(tmp_path, capsys):
    with pytest.raises(SystemExit):
        convert_main(["--from", "uer", "--to", "hf", "--input_model_path", "x.bin"])
    assert "--config_path --output_dir --architecture" in capsys.readouterr().err


def test_toolkit_does_not_import_transformers():
    import ast
    root = os.path.join(os.path.dirname(__file__), "..", "..", "uer")
    offenders = []
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                tree = ast.parse(open(path, encoding="utf-8").read())
                for node in ast.walk(tree):
                    mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                        [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                    offenders += [path for m in mods if m.split(".")[0] == "transformers"]
    assert not offenders, offenders


def test_script_runs_and_reports_errors_in_one_line(tmp_path):
    import subprocess
    import sys
    config = {"model_type": "bert", "architectures": ["BertForMultipleChoice"], "vocab_size": 10,
              "hidden_size": 8, "intermediate_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1,
              "max_position_embeddings": 8}
    (tmp_path / "config.json").write_text(json.dumps(config))
    script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "convert.py")
    run = subprocess.run([sys.executable, script, "--from", "hf", "--to", "uer", "--input_dir", str(tmp_path),
                          "--output_model_path", str(tmp_path / "m.bin")], capture_output=True, text=True)
    assert run.returncode == 2, run.stderr
    assert "error: BertForMultipleChoice is not a bert model class uer converts" in run.stderr
    assert "Traceback" not in run.stderr

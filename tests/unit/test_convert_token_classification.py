"""BertForTokenClassification (and RoBERTa's / XLM-R's) <-> uer's NER Tagger, proven numerically: a
tiny random transformers model is converted, per-token logits agree to 1e-5 on a padded batch, the
converted model goes back to exactly the same tensors and transformers loads it; label names travel
through config.json's id2label."""

import json

import pytest
import torch

T = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

from uer.config import load_config  # noqa: E402
from uer.convert import build_uer_model, uer_kind, uer_to_hf  # noqa: E402
from uer.convert.cli import main as convert_main  # noqa: E402
from uer.convert.converter import hf_label_names  # noqa: E402
from uer.errors import ConfigError  # noqa: E402
from uer.models.weights import load_weights, read_weights  # noqa: E402
from uer.tasks.tagging import Tagger  # noqa: E402

T.logging.set_verbosity_error()
TOL = 1e-5
V = 99
SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
ID2LABEL = dict(enumerate(TAGS))
LABEL2ID = {t: i for i, t in enumerate(TAGS)}

CASES = {
    "bert": (lambda: T.BertForTokenClassification(T.BertConfig(
        vocab_size=V, max_position_embeddings=40, id2label=ID2LABEL, label2id=LABEL2ID, **SIZES)), 0, "pair"),
    "roberta": (lambda: T.RobertaForTokenClassification(T.RobertaConfig(
        vocab_size=V, max_position_embeddings=42, pad_token_id=1, type_vocab_size=1, id2label=ID2LABEL,
        label2id=LABEL2ID, **SIZES)), 1, "single"),
    "xlm-roberta": (lambda: T.XLMRobertaForTokenClassification(T.XLMRobertaConfig(
        vocab_size=V, max_position_embeddings=42, pad_token_id=1, type_vocab_size=1, id2label=ID2LABEL,
        label2id=LABEL2ID, **SIZES)), 1, "single"),
}


def randomize(model, seed=0):
    """Distinct values everywhere (default init hides swapped weights); RoBERTa's padding rows zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            if p.dim() == 1 and "LayerNorm" in name and name.endswith("weight"):
                p.add_(1.0)
            if name.endswith("position_embeddings.weight") and model.config.model_type != "bert":
                p[: model.config.pad_token_id + 1] = 0
    return model.eval()


def batch(style, pad_id):
    g = torch.Generator().manual_seed(1)
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
    return src, seg, keep, hf


@pytest.mark.parametrize("case", list(CASES))
def test_token_classification_parity_and_round_trip(case, tmp_path):
    build, pad_id, style = CASES[case]
    torch.manual_seed(0)
    hf_model = randomize(build())
    hf_dir, back_dir = tmp_path / "hf", tmp_path / "back"
    hf_model.save_pretrained(hf_dir)
    model_path, config_path = str(tmp_path / "uer.bin"), str(tmp_path / "uer.json")
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(hf_dir),
                  "--output_model_path", model_path, "--output_config_path", config_path])

    config = load_config(config_path)
    assert config.labels_num == len(TAGS)
    ours = build_uer_model(config, "tagger")
    assert ours.head_name == "tagger"
    load_weights(ours, model_path)          # strict: every tensor of the Tagger, nothing else
    ours.eval()
    src, seg, keep, hf_batch = batch(style, pad_id)
    with torch.no_grad():
        theirs = hf_model(**hf_batch).logits
        mine = ours.logits(src, seg)
    diff = float((mine[keep] - theirs[keep]).abs().max())
    print(f"\n{case} token classification: max |uer - hf| logits = {diff:.2e}")
    assert diff <= TOL

    state = read_weights(model_path)
    assert uer_kind(state, config) == ("tagger", ())
    result = uer_to_hf(state, config, case, label_names=TAGS)
    assert result.variant.hf_class == type(hf_model).__name__
    assert hf_label_names(result.hf_config) == TAGS and result.hf_config["label2id"] == LABEL2ID

    convert_main(["--from", "uer", "--to", "hf", "--input_model_path", model_path, "--config_path", config_path,
                  "--output_dir", str(back_dir), "--architecture", case])
    original, exported = load_file(hf_dir / "model.safetensors"), load_file(back_dir / "model.safetensors")
    assert sorted(exported) == sorted(original)
    unequal = [k for k in original if not torch.equal(original[k], exported[k])]
    assert not unequal, unequal
    written = json.loads((back_dir / "config.json").read_text())
    assert written["architectures"] == [type(hf_model).__name__] and len(written["id2label"]) == len(TAGS)
    reloaded, info = T.AutoModelForTokenClassification.from_pretrained(back_dir, output_loading_info=True)
    assert type(reloaded) is type(hf_model)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    with torch.no_grad():
        assert torch.allclose(reloaded.eval()(**hf_batch).logits, theirs, atol=1e-6, rtol=0)


def test_label_names_must_match_labels_num(tmp_path):
    hf_model = randomize(CASES["bert"][0]())
    hf_model.save_pretrained(tmp_path / "hf")
    model_path, config_path = str(tmp_path / "uer.bin"), str(tmp_path / "uer.json")
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(tmp_path / "hf"),
                  "--output_model_path", model_path, "--output_config_path", config_path])
    with pytest.raises(ConfigError, match="3 label names given for a tagger model with labels_num 5"):
        uer_to_hf(read_weights(model_path), load_config(config_path), "bert", label_names=TAGS[:3])

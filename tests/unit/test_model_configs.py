"""Every shipped config under models/ loads, validates and builds; parameter counts match hand formulas
and the published counts of the original models (adjusted for our vocabulary padding)."""

import glob
import os

import pytest
import torch

from uer.config import config_from_dict, load_config
from uer.models import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Composite pretrainers (models/electra/, the DeBERTaV3 recipe models/deberta_v3/) are covered by
# tests/unit/test_electra.py and test_deberta.py, encoder-decoder models by test_seq2seq_configs.py (GLM
# by test_ul2_glm.py);
# METRO (models/metro/) by test_metro.py; DeepSpeed engine configs (models/deepspeed/) are not model configs.
OTHER_TESTS = ("electra", "deberta_v3", "metro", "deepspeed", "t5", "t5_v1_1", "bart", "pegasus", "transformer", "ul2", "glm",
               "llama", "llama2", "llama3", "mistral", "qwen2", "bloom",   # decoder-only LLMs: test_llm_configs.py
               "modernbert", "mosaicbert")   # pre-norm / GLU encoder recipes: test_modernbert.py
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, "models", "**", "*.json"), recursive=True)
                 if not any(os.sep + d + os.sep in p for d in OTHER_TESTS))
SMALL = {"bert/tiny.json", "bert/mini.json", "bert/small.json"}


def rel(path):
    return os.path.relpath(path, os.path.join(ROOT, "models")).replace(os.sep, "/")


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def build_on_meta(config):
    """Structure only, no memory or init cost: lets us count the parameters of the large configs."""
    with torch.device("meta"):
        return build_model(config)


def test_configs_are_found():
    names = {rel(p) for p in CONFIGS}
    assert {"bert/tiny.json", "bert/base.json", "gpt2/small.json", "albert/base.json",
            "roberta/base.json"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=rel)
def test_config_loads_and_round_trips(path):
    c = load_config(path)
    assert c.vocab_size == 0                     # set from the vocabulary at build time
    assert c.hidden_size % c.heads_num == 0 and c.head_size * c.heads_num == c.hidden_size
    assert config_from_dict(c.to_dict(), path) == c
    with_vocab = load_config(path, {"vocab_size": 1000})
    assert with_vocab.vocab_size == 1000 and with_vocab.padded_vocab_size == 1024


@pytest.mark.parametrize("path", CONFIGS, ids=rel)
def test_config_family_properties(path):
    c = load_config(path)
    family = rel(path).split("/")[0]
    if family == "gpt2":
        assert c.mask == "causal" and c.layernorm_positioning == "pre" and c.target == ["lm"]
        assert c.remove_embedding_layernorm and c.embedding == ["word", "pos"]
        assert c.max_seq_length == 1024 and c.hidden_act == "gelu_fast"
    else:
        assert c.mask == "fully_visible" and c.layernorm_positioning == "post"
        assert "mlm" in c.target
    if family == "albert":
        assert c.parameter_sharing and c.factorized_embedding_parameterization
        assert c.emb_size < c.hidden_size and c.target == ["mlm", "sp"]
    else:
        assert c.emb_size == c.hidden_size and not c.parameter_sharing
    if family == "roberta":
        assert c.target == ["mlm"] and "seg" not in c.embedding
    if family == "bert":
        assert c.target == ["mlm", "sp"] and c.embedding == ["word", "pos", "seg"]


@pytest.mark.parametrize("path", [p for p in CONFIGS if rel(p) in SMALL], ids=rel)
def test_small_configs_build_and_run(path):
    c = load_config(path, {"vocab_size": 1000, "dropout": 0.0})
    torch.manual_seed(0)
    model = build_model(c).eval()
    assert model.embedding.word_weight().shape == (1024, c.emb_size)
    assert len(model.encoder.layers) == c.layers_num
    src = torch.randint(5, 1000, (2, 8))
    seg = torch.tensor([[1] * 4 + [2] * 4, [1] * 3 + [2] * 3 + [0] * 2])
    batch = {"src": src, "seg": seg, "mlm_positions": torch.tensor([[1, 5], [2, 4]]),
             "mlm_labels": torch.tensor([[7, 8], [9, -100]]), "sp_labels": torch.tensor([0, 1])}
    with torch.no_grad():
        out = model(batch)
    assert set(out) == {"loss", "mlm_loss", "mlm_acc", "sp_loss", "sp_acc"}
    assert torch.isfinite(out["loss"])


@pytest.mark.parametrize("path", CONFIGS, ids=rel)
def test_every_config_builds_on_meta(path):
    c = load_config(path, {"vocab_size": 1000})
    model = build_on_meta(c)
    assert n_params(model) == n_params_formula(c)
    assert model.flops_per_token(128) > 0


def n_params_formula(c):
    """Parameters of our model for config ``c``, written out by hand."""
    V, E, H, F, P = c.padded_vocab_size, c.emb_size, c.hidden_size, c.feedforward_size, c.max_seq_length
    emb = V * E
    emb += P * E if "pos" in c.embedding else 0
    emb += 3 * E if "seg" in c.embedding else 0
    emb += 0 if c.remove_embedding_layernorm else 2 * E
    layer = 4 * (H * H + H) + (H * F + F) + (F * H + H) + 2 * (2 * H)
    layers = 1 if c.parameter_sharing else c.layers_num
    enc = layer * layers
    enc += (E * H + H) if c.factorized_embedding_parameterization else 0
    enc += 2 * H if c.layernorm_positioning == "pre" else 0
    enc += (2 * 256 * H + 2 * H) if c.encoder == "deberta" else 0   # relative-position table + its LayerNorm
    heads = 0
    if "mlm" in c.target:
        heads += (H * E + E) + 2 * E + V          # dense, norm, output bias (weight tied)
    if "sp" in c.target:
        heads += (H * H + H) + (H * 2 + 2)
    if "lm" in c.target:
        heads += 0                                # tied, no bias
    return emb + enc + heads


def test_bert_tiny_parameter_count_hand_computed():
    c = load_config(os.path.join(ROOT, "models", "bert", "tiny.json"), {"vocab_size": 1000})
    torch.manual_seed(0)
    model = build_model(c)
    V, H, F, P, L = 1024, 128, 512, 512, 2
    embedding = V * H + P * H + 3 * H + 2 * H
    layer = 4 * (H * H + H) + (H * F + F) + (F * H + H) + 4 * H
    mlm = (H * H + H) + 2 * H + V
    sp = (H * H + H) + (2 * H + 2)
    expected = embedding + L * layer + mlm + sp
    assert expected == 131072 + 65536 + 384 + 256 + 2 * 198272 + 16512 + 256 + 1024 + 16512 + 258 == 628_354
    assert n_params(model) == expected
    assert sum(p.numel() for p in model.embedding.parameters()) == embedding
    assert sum(p.numel() for p in model.encoder.parameters()) == L * layer
    assert sum(p.numel() for p in model.target.parameters()) == mlm + sp


@pytest.mark.parametrize("name,vocab,published,extra", [
    # Hugging Face BertForPreTraining (bert-base-uncased): 110,106,428.  We pad 30522 -> 30528 rows
    # (embedding + MLM bias) and keep a third segment row (0 = padding).
    ("bert/base.json", 30522, 110_106_428, 6 * 768 + 6 + 768),
    # Hugging Face GPT2LMHeadModel (gpt2): 124,439,808; padded 50257 -> 50304 rows.
    ("gpt2/small.json", 50257, 124_439_808, 47 * 768),
    # gpt2-medium: 354,823,168.
    ("gpt2/medium.json", 50257, 354_823_168, 47 * 1024),
])
def test_published_parameter_counts(name, vocab, published, extra):
    c = load_config(os.path.join(ROOT, "models", name), {"vocab_size": vocab})
    assert n_params(build_on_meta(c)) == published + extra


def test_albert_base_parameter_count():
    # Hugging Face AlbertModel (albert-base-v2, vocab 30000) is 11,683,584 with its pooler; our sp
    # head's first dense layer plays the pooler's part.  Pretraining heads: MLM dense 768->128 + norm
    # + bias, SOP 768->2.  Padding: 30000 -> 30016 rows (embedding + bias) and a third segment row.
    c = load_config(os.path.join(ROOT, "models", "albert", "base.json"), {"vocab_size": 30000})
    model = build_on_meta(c)
    hf_albert_model = 11_683_584
    heads = (768 * 128 + 128) + 2 * 128 + 30000 + (768 * 2 + 2)
    padding = 16 * 128 + 16 + 128
    assert n_params(model) == hf_albert_model + heads + padding
    assert len(model.encoder.layers) == 1

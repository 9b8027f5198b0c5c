"""The decoder-only LLM configs (models/llama, llama2, llama3, mistral, qwen2, bloom): they load, their
family's blocks are what the published model uses, and built on the meta device (no memory: 70B
included) their parameter counts equal the published models' — every vocabulary here is already a
multiple of 64, so the padded rows add nothing.  The tiny config builds and generates."""

import math
import os

import pytest
import torch

from uer.config import load_config
from uer.generation import GenerationSettings, generate_lm
from uer.models import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# config -> (the published model, its vocabulary, its parameter count as transformers builds it).
PUBLISHED = {
    "llama/7b.json": ("huggyllama/llama-7b", 32000, 6_738_415_616),
    "llama2/7b.json": ("meta-llama/Llama-2-7b-hf", 32000, 6_738_415_616),
    "llama2/13b.json": ("meta-llama/Llama-2-13b-hf", 32000, 13_015_864_320),
    "llama2/70b.json": ("meta-llama/Llama-2-70b-hf", 32000, 68_976_648_192),
    "llama3/8b.json": ("meta-llama/Meta-Llama-3-8B", 128256, 8_030_261_248),
    "mistral/7b.json": ("mistralai/Mistral-7B-v0.1", 32000, 7_241_732_096),
    "qwen2/0.5b.json": ("Qwen/Qwen2-0.5B", 151936, 494_032_768),
    "bloom/560m.json": ("bigscience/bloom-560m", 250880, 559_214_592),
}
LLM_FAMILIES = ("llama", "llama2", "llama3", "mistral", "qwen2", "bloom")


def path_of(rel):
    return os.path.join(ROOT, "models", rel)


@pytest.mark.parametrize("rel", sorted(PUBLISHED))
def test_parameter_count_equals_the_published_model(rel):
    _, vocab, published = PUBLISHED[rel]
    config = load_config(path_of(rel), {"vocab_size": vocab})
    assert config.padded_vocab_size == vocab
    with torch.device("meta"):
        model = build_model(config)
    assert sum(p.numel() for p in model.parameters()) == published
    assert model.flops_per_token(config.max_seq_length) > 6 * published * 0.9


@pytest.mark.parametrize("rel", sorted(PUBLISHED) + ["llama/tiny.json"])
def test_family_blocks(rel):
    c = load_config(path_of(rel))
    family = rel.split("/")[0]
    assert c.mask == "causal" and c.layernorm_positioning == "pre" and c.target == ["lm"]
    assert c.embedding == ["word"] and c.vocab_size == 0 and c.dropout == 0.0
    if family == "bloom":
        assert c.alibi_position_embedding and not c.rotary_position_embedding
        assert not c.remove_embedding_layernorm and c.layernorm == "normal"     # BLOOM's embedding LayerNorm
        assert c.feed_forward == "dense" and not c.remove_transformer_bias and c.tie_weights
        return
    assert c.rotary_position_embedding and c.remove_embedding_layernorm
    assert c.layernorm == "rms" and c.feed_forward == "gated" and c.hidden_act == "silu"
    assert c.remove_transformer_bias and c.attention_qkv_bias == (family == "qwen2")
    assert c.tie_weights == (family == "qwen2")
    expected = {"llama": (10000.0, 2048), "llama2": (10000.0, 4096), "llama3": (500000.0, 8192),
                "mistral": (10000.0, 32768), "qwen2": (1000000.0, 32768)}[family]
    if rel != "llama/tiny.json":
        assert (c.rope_theta, c.max_seq_length) == expected
    grouped = {"llama2/70b.json": 8, "llama3/8b.json": 8, "mistral/7b.json": 8, "qwen2/0.5b.json": 2,
               "llama/tiny.json": 4}
    assert c.kv_heads == grouped.get(rel, c.heads_num)


def test_tiny_llama_builds_trains_a_step_and_generates():
    config = load_config(path_of("llama/tiny.json"), {"vocab_size": 300, "layers_num": 2})
    torch.manual_seed(0)
    model = build_model(config)
    src = torch.randint(1, 300, (2, 12))
    batch = {"src": src[:, :-1], "seg": torch.ones_like(src[:, :-1]), "lm_labels": src[:, 1:]}
    out = model(batch)
    out["loss"].backward()
    loss = float(out["loss"].detach())
    assert abs(loss - math.log(300)) < 1.0           # near uniform at initialisation
    assert model.encoder.layers[0].attention.key.weight.grad is not None
    tokens = generate_lm(model, [[5, 6, 7], [8]], GenerationSettings(max_new_tokens=4, top_k=1))
    assert [len(t) for t in tokens] == [4, 4]

"""LLaMA-family and BLOOM blocks: rotary embeddings (against a complex-number rotation and transformers'
LLaMA rotary code, scaled frequencies against transformers' rope init functions), grouped-query
attention (against plain attention with repeated key/value heads, both SDPA paths), ALiBi (slopes
from the paper's formula, the bias on the scores), cached decoding and left-padded batches of tiny
LLaMA / BLOOM models, and logits parity with random tiny transformers Llama / Qwen2 / BLOOM models
through a hand-written parameter map."""

import math

import pytest
import torch

import uer.layers.attention as attention_module
from uer.config import config_from_dict
from uer.errors import ConfigError
from uer.generation import GenerationSettings, generate_lm
from uer.layers.alibi import AlibiPosition, alibi_slopes
from uer.layers.attention import MultiHeadAttention, Positions, repeat_kv
from uer.layers.masks import AttentionMask, build_attention_mask
from uer.layers.rotary import RotaryPosition, base_inverse_frequencies
from uer.models import build_model
from tests.unit.test_generation import randomized

transformers = pytest.importorskip("transformers")


def llama_config(**changes):
    base = dict(embedding=["word"], remove_embedding_layernorm=True, vocab_size=60, emb_size=32, hidden_size=32,
                feedforward_size=88, heads_num=4, kv_heads_num=2, layers_num=2, max_seq_length=64,
                hidden_act="silu", mask="causal", layernorm_positioning="pre", layernorm="rms", layernorm_eps=1e-6,
                feed_forward="gated", remove_transformer_bias=True, rotary_position_embedding=True,
                target=["lm"], tie_weights=False, dropout=0.0)
    base.update(changes)
    return config_from_dict(base, "<test>")


def bloom_config(**changes):
    base = dict(embedding=["word"], remove_embedding_layernorm=False, vocab_size=60, emb_size=32, hidden_size=32,
                feedforward_size=128, heads_num=4, layers_num=2, max_seq_length=64, hidden_act="gelu_fast",
                mask="causal", layernorm_positioning="pre", layernorm_eps=1e-5, alibi_position_embedding=True,
                target=["lm"], tie_weights=True, dropout=0.0)
    base.update(changes)
    return config_from_dict(base, "<test>")


# ---------------------------------------------------------------------------------------------- rotary

def complex_rotation(x, positions, inv_freq):
    """RoPE written as complex multiplication: dims (i, i + d/2) are one complex number rotated by
    position * inv_freq[i] (in float64)."""
    half = x.size(-1) // 2
    z = torch.complex(x[..., :half].double(), x[..., half:].double())
    angles = positions.double()[:, None, :, None] * inv_freq.double()
    z = z * torch.polar(torch.ones_like(angles), angles)
    return torch.cat([z.real, z.imag], dim=-1)


def test_rotary_equals_complex_rotation_and_keeps_relative_scores():
    torch.manual_seed(0)
    rope = RotaryPosition(16, theta=10000.0)
    q, k = torch.randn(2, 3, 7, 16), torch.randn(2, 1, 7, 16)
    positions = torch.tensor([[0, 1, 2, 3, 4, 5, 6], [0, 0, 0, 1, 2, 3, 40]])
    rq, rk = rope.rotate(q, k, positions)
    inv = base_inverse_frequencies(16, 10000.0)
    torch.testing.assert_close(rq.double(), complex_rotation(q, positions, inv), atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(rk.double(), complex_rotation(k, positions, inv), atol=2e-5, rtol=1e-5)
    # q.k after rotation depends on the distance only: shifting both positions changes nothing.
    one_q, one_k = q[:1, :1, :1], k[:1, :1, :1]
    scores = []
    for shift in (0, 5, 31):
        a, _ = rope.rotate(one_q, one_q, torch.tensor([[3 + shift]]))
        _, b = rope.rotate(one_k, one_k, torch.tensor([[1 + shift]]))
        scores.append(float((a * b).sum()))
    assert max(scores) - min(scores) < 1e-4
    a, _ = rope.rotate(one_q, one_q, torch.tensor([[9]]))
    assert abs(float((a * b).sum()) - scores[-1]) > 1e-3          # a different distance: a different score


@pytest.mark.parametrize("rope", [{"rope_type": "default", "rope_theta": 500000.0},
                                  {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
                                  {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                   "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                   "original_max_position_embeddings": 64}], ids=lambda r: r["rope_type"])
def test_rotary_matches_transformers_llama(rope):
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb
    hf_config = transformers.LlamaConfig(hidden_size=64, num_attention_heads=2, max_position_embeddings=512,
                                         rope_parameters=dict(rope))
    hf = LlamaRotaryEmbedding(hf_config)
    scaling = "" if rope["rope_type"] == "default" else rope["rope_type"]
    ours = RotaryPosition(32, rope["rope_theta"], scaling, rope.get("factor", 1.0), rope.get("low_freq_factor", 1.0),
                          rope.get("high_freq_factor", 4.0), rope.get("original_max_position_embeddings", 512))
    torch.testing.assert_close(ours.inv_freq, hf.inv_freq, rtol=1e-6, atol=0)
    torch.manual_seed(1)
    q, k = torch.randn(2, 2, 9, 32), torch.randn(2, 2, 9, 32)
    positions = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 1, 2, 3, 300, 301]])
    cos, sin = hf(q, positions)
    expected_q, expected_k = apply_rotary_pos_emb(q, k, cos, sin)
    got_q, got_k = ours.rotate(q, k, positions)
    torch.testing.assert_close(got_q, expected_q, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_k, expected_k, rtol=1e-5, atol=1e-5)


def test_llama3_and_dynamic_frequencies_match_transformers_init_functions():
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    for params in ({"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                   {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 2.0, "low_freq_factor": 2.0,
                    "high_freq_factor": 8.0, "original_max_position_embeddings": 256}):
        hf_config = transformers.LlamaConfig(hidden_size=4096, num_attention_heads=32, rope_parameters=dict(params),
                                             max_position_embeddings=131072)
        expected, _ = ROPE_INIT_FUNCTIONS["llama3"](hf_config, "cpu")
        ours = RotaryPosition(128, params["rope_theta"], "llama3", params["factor"], params["low_freq_factor"],
                              params["high_freq_factor"], params["original_max_position_embeddings"])
        torch.testing.assert_close(ours.inv_freq, expected, rtol=1e-6, atol=0)
        base = base_inverse_frequencies(128, params["rope_theta"])
        assert torch.equal(ours.inv_freq[:4], base[:4])            # high frequencies kept
        torch.testing.assert_close(ours.inv_freq[-4:], base[-4:] / params["factor"])   # low ones stretched
    # Dynamic NTK: the base table up to the original length, transformers' grown theta beyond it.
    hf_config = transformers.LlamaConfig(hidden_size=64, num_attention_heads=2, max_position_embeddings=100,
                                         rope_parameters={"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0})
    ours = RotaryPosition(32, 10000.0, "dynamic", 2.0, original_length=100)
    short = ours.frequencies(torch.arange(100)[None])
    torch.testing.assert_close(short, base_inverse_frequencies(32, 10000.0))
    expected, _ = ROPE_INIT_FUNCTIONS["dynamic"](hf_config, "cpu", seq_len=250)
    torch.testing.assert_close(ours.frequencies(torch.arange(250)[None]), expected, rtol=1e-6, atol=0)


def test_cached_keys_are_rotated_once_at_their_own_positions():
    """The trap: rotating after concatenating the cache would rotate old keys again."""
    torch.manual_seed(0)
    att = MultiHeadAttention(32, 4, 8, 0.0, kv_heads_num=2).eval()
    rope = RotaryPosition(8)
    x = torch.randn(2, 6, 32)
    full = att(x, AttentionMask(None, is_causal=True), rope)
    cache = attention_module.AttentionCache()
    steps = [att(x[:, :3], AttentionMask(None, is_causal=True), rope, cache=cache)]
    for t in range(3, 6):
        steps.append(att(x[:, t:t + 1], AttentionMask(None), rope, cache=cache))
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-6)
    assert cache.k.shape == (2, 2, 6, 8)                           # the cache holds the kv heads only
    # The cached keys are the rotated keys of the full sequence.
    k = att.key(x).view(2, 6, 2, 8).transpose(1, 2)
    _, rotated = rope.rotate(k, k, torch.arange(6)[None])
    torch.testing.assert_close(cache.k, rotated, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------- GQA

def reference_attention(q, k, v, mask=None, bias=None):
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v


def expanded_copy(att):
    """A plain multi-head attention whose key/value heads are ``att``'s, repeated per query group."""
    plain = MultiHeadAttention(att.query.in_features, att.heads_num, att.head_size, 0.0,
                               bias=att.output.bias is not None)
    groups = att.heads_num // att.kv_heads_num
    with torch.no_grad():
        plain.query.load_state_dict(att.query.state_dict())
        plain.output.load_state_dict(att.output.state_dict())
        for name in ("key", "value"):
            src, dst = getattr(att, name), getattr(plain, name)
            w = src.weight.view(att.kv_heads_num, att.head_size, -1)
            dst.weight.copy_(w.repeat_interleave(groups, dim=0).reshape_as(dst.weight))
            if src.bias is not None:
                dst.bias.copy_(src.bias.view(att.kv_heads_num, -1).repeat_interleave(groups, dim=0).flatten())
    return plain.eval()


@pytest.mark.parametrize("native", [True, False], ids=["enable_gqa", "repeat_interleave"])
@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_grouped_query_attention_equals_plain_attention_with_repeated_heads(monkeypatch, native, kv_heads):
    monkeypatch.setattr(attention_module, "NATIVE_GQA", native and attention_module.NATIVE_GQA)
    torch.manual_seed(kv_heads)
    att = MultiHeadAttention(32, 4, 8, 0.0, kv_heads_num=kv_heads).eval()
    assert att.key.weight.shape == (kv_heads * 8, 32) and att.value.weight.shape == (kv_heads * 8, 32)
    plain = expanded_copy(att)
    x = torch.randn(2, 5, 32)
    seg = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    rope = RotaryPosition(8)
    for mask in (AttentionMask(None), build_attention_mask("causal", torch.ones_like(seg)),
                 build_attention_mask("causal", seg), build_attention_mask("fully_visible", seg)):
        torch.testing.assert_close(att(x, mask), plain(x, mask), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(att(x, mask, rope), plain(x, mask, rope), rtol=1e-5, atol=1e-6)
    # And against attention written out by hand (kv_heads = heads: plain attention itself).
    q = att.query(x).view(2, 5, 4, 8).transpose(1, 2)
    k = repeat_kv(att.key(x).view(2, 5, kv_heads, 8).transpose(1, 2), 4)
    v = repeat_kv(att.value(x).view(2, 5, kv_heads, 8).transpose(1, 2), 4)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    expected = att.output(reference_attention(q, k, v, causal).transpose(1, 2).reshape(2, 5, 32))
    torch.testing.assert_close(att(x, AttentionMask(None, is_causal=True)), expected, rtol=1e-5, atol=1e-6)


def test_qkv_bias_without_output_bias_qwen2_style():
    att = MultiHeadAttention(32, 4, 8, 0.0, bias=False, kv_heads_num=2, qkv_bias=True)
    assert att.query.bias is not None and att.key.bias.shape == (16,) and att.value.bias is not None
    assert att.output.bias is None
    model = build_model(llama_config(attention_qkv_bias=True))
    names = {n for n, _ in model.named_parameters()}
    assert "encoder.layers.0.attention.key.bias" in names and "encoder.layers.0.attention.output.bias" not in names
    assert not any("feed_forward" in n and n.endswith("bias") for n in names)


def test_matmul_params_per_token_counts_the_smaller_key_value_projections():
    c = llama_config(layers_num=3)
    model = build_model(c)
    H, F_, d = c.hidden_size, c.feedforward_size, c.head_size
    per_layer = H * H + 2 * H * c.kv_heads * d + H * H + 3 * H * F_
    assert model.encoder.matmul_params_per_token() == 3 * per_layer
    plain = build_model(llama_config(layers_num=3, kv_heads_num=0))
    assert plain.encoder.matmul_params_per_token() - model.encoder.matmul_params_per_token() == 3 * 2 * H * H // 2


# ---------------------------------------------------------------------------------------------- ALiBi

@pytest.mark.parametrize("heads", [8, 12, 16])
def test_alibi_slopes_follow_the_paper(heads):
    # Press et al.: for n = 2^k heads the slopes are 2^(-8i/n), i = 1..n; otherwise those of the largest
    # power of two p < n followed by the odd-indexed slopes of 2p: 2^(-8(2j-1)/(2p)), j = 1..n-p.
    p = 2 ** int(math.log2(heads))
    expected = [2 ** (-8 * i / p) for i in range(1, p + 1)] + [2 ** (-8 * (2 * j - 1) / (2 * p))
                                                                 for j in range(1, heads - p + 1)]
    torch.testing.assert_close(alibi_slopes(heads), torch.tensor(expected), rtol=1e-6, atol=0)
    from transformers.models.bloom.modeling_bloom import _get_alibi_slopes
    torch.testing.assert_close(alibi_slopes(heads), _get_alibi_slopes(heads, "cpu").float(), rtol=1e-6, atol=0)


def test_alibi_bias_is_applied_to_the_scores():
    torch.manual_seed(0)
    alibi = AlibiPosition(4)
    bias = alibi.bias(3, 5, "cpu")                      # queries at 2, 3, 4
    assert bias.shape == (1, 4, 3, 5)
    slopes = alibi_slopes(4)
    assert float(bias[0, 1, 0, 0]) == pytest.approx(-2 * float(slopes[1]))
    assert float(bias[0, 3, 2, 4]) == 0.0 and float(bias[0, 0, 2, 1]) == pytest.approx(-3 * float(slopes[0]))
    att = MultiHeadAttention(32, 4, 8, 0.0).eval()
    x = torch.randn(2, 6, 32)
    q, k, v = (getattr(att, n)(x).view(2, 6, 4, 8).transpose(1, 2) for n in ("query", "key", "value"))
    i = torch.arange(6)
    expected_bias = -slopes[:, None, None] * (i[:, None] - i[None, :]).abs().float()
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    expected = att.output(reference_attention(q, k, v, causal, expected_bias).transpose(1, 2).reshape(2, 6, 32))
    torch.testing.assert_close(att(x, AttentionMask(None, is_causal=True), alibi), expected, rtol=1e-5, atol=1e-6)
    # Per-row positions: a left-padded row's real tokens get the biases of an unpadded sequence.
    positions = Positions(torch.tensor([[0, 0, 1, 2]]), torch.tensor([[0, 0, 1, 2]]))
    padded = alibi.bias(4, 4, "cpu", positions)[0, :, 1:, 1:]
    torch.testing.assert_close(padded, alibi.bias(3, 3, "cpu")[0])


# ---------------------------------------------------------------------------------------------- generation

PROMPTS = [[3, 17, 9, 24, 5, 11, 2], [7, 8], [30, 1, 44, 12]]


def greedy(n):
    return GenerationSettings(max_new_tokens=n, top_k=1)


@pytest.fixture(scope="module", params=["llama", "bloom"])
def tiny_lm(request):
    torch.manual_seed(0)
    if request.param == "llama":
        return randomized(build_model(llama_config()))
    # A tied random ALiBi model mostly repeats one token; untied, these weights vary (9 distinct tokens).
    return randomized(build_model(bloom_config(tie_weights=False)), seed=1, scale=0.3)


def test_cached_logits_equal_the_full_pass(tiny_lm):
    ids = torch.tensor([PROMPTS[0] + [4, 6, 19]])
    seg = torch.ones_like(ids)
    with torch.no_grad():
        full = tiny_lm.target.lm.logits(tiny_lm.encode(ids, seg))
        cache = tiny_lm.encoder.new_cache()
        steps = [tiny_lm.target.lm.logits(tiny_lm.encoder(tiny_lm.embedding(ids[:, :5], seg[:, :5]), seg[:, :5],
                                                          cache))]
        for t in range(5, ids.size(1)):
            hidden = tiny_lm.encoder(tiny_lm.embedding(ids[:, t:t + 1], seg[:, t:t + 1]), seg[:, t:t + 1], cache)
            steps.append(tiny_lm.target.lm.logits(hidden))
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-4)


def test_cached_greedy_equals_full_recomputation_and_batches_equal_single_prompts(tiny_lm):
    cached = generate_lm(tiny_lm, PROMPTS, greedy(16))
    assert cached == generate_lm(tiny_lm, PROMPTS, greedy(16), use_cache=False)
    assert len(set(sum(cached, []))) > 5                     # varied continuations
    assert cached == [generate_lm(tiny_lm, [p], greedy(16))[0] for p in PROMPTS]
    beam = GenerationSettings(max_new_tokens=6, beam_width=3)
    assert generate_lm(tiny_lm, PROMPTS, beam) == [generate_lm(tiny_lm, [p], beam)[0] for p in PROMPTS]


@pytest.mark.parametrize("make", [llama_config, bloom_config], ids=["llama", "bloom"])
def test_activation_checkpointing_gives_the_same_gradients(make):
    torch.manual_seed(0)
    model = build_model(make()).train()
    src = torch.randint(1, 60, (2, 9))
    batch = {"src": src[:, :-1], "seg": torch.ones(2, 8, dtype=torch.long), "lm_labels": src[:, 1:]}
    model(batch)["loss"].backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.encoder.activation_checkpointing = True
    model(batch)["loss"].backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, plain[name], rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------------------------- parity

def fill_random(model, seed=0, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale + (1.0 if "norm" in name and name.endswith("weight")
                                                                    else 0.0))
    return model.eval()


def llama_family_state(hf_state, layers, tied):
    """transformers Llama / Mistral / Qwen2 names -> ours (the converter's real table lives in uer/convert)."""
    ours = {"embedding.word.embedding.weight": hf_state["model.embed_tokens.weight"],
            "encoder.final_norm.weight": hf_state["model.norm.weight"]}
    if not tied:
        ours["target.lm.output_weight"] = hf_state["lm_head.weight"]
    names = {"self_attn.q_proj": "attention.query", "self_attn.k_proj": "attention.key",
             "self_attn.v_proj": "attention.value", "self_attn.o_proj": "attention.output",
             "mlp.gate_proj": "feed_forward.linear_gate", "mlp.up_proj": "feed_forward.linear_1",
             "mlp.down_proj": "feed_forward.linear_2", "input_layernorm": "norm_1",
             "post_attention_layernorm": "norm_2"}
    for i in range(layers):
        for theirs, mine in names.items():
            for kind in ("weight", "bias"):
                key = f"model.layers.{i}.{theirs}.{kind}"
                if key in hf_state:
                    ours[f"encoder.layers.{i}.{mine}.{kind}"] = hf_state[key]
    return ours


def bloom_state(hf_state, layers, heads, head_size):
    """transformers BLOOM -> ours; its fused query_key_value rows are (head, q|k|v, head dim)."""
    p = "transformer."
    ours = {"embedding.word.embedding.weight": hf_state[p + "word_embeddings.weight"],
            "embedding.norm.weight": hf_state[p + "word_embeddings_layernorm.weight"],
            "embedding.norm.bias": hf_state[p + "word_embeddings_layernorm.bias"],
            "encoder.final_norm.weight": hf_state[p + "ln_f.weight"], "encoder.final_norm.bias": hf_state[p + "ln_f.bias"]}
    for i in range(layers):
        h, o = f"{p}h.{i}.", f"encoder.layers.{i}."
        w = hf_state[h + "self_attention.query_key_value.weight"].view(heads, 3, head_size, -1)
        b = hf_state[h + "self_attention.query_key_value.bias"].view(heads, 3, head_size)
        for j, name in enumerate(("query", "key", "value")):
            ours[o + f"attention.{name}.weight"] = w[:, j].reshape(heads * head_size, -1)
            ours[o + f"attention.{name}.bias"] = b[:, j].reshape(-1)
        for theirs, mine in (("self_attention.dense", "attention.output"), ("mlp.dense_h_to_4h", "feed_forward.linear_1"),
                             ("mlp.dense_4h_to_h", "feed_forward.linear_2"), ("input_layernorm", "norm_1"),
                             ("post_attention_layernorm", "norm_2")):
            for kind in ("weight", "bias"):
                ours[o + f"{mine}.{kind}"] = hf_state[h + f"{theirs}.{kind}"]
    return ours


IDS = torch.tensor([[5, 17, 3, 44, 21, 9, 60, 2, 33, 12], [7, 7, 1, 0, 58, 63, 4, 25, 36, 11]])


def assert_parity(ours, hf, ids=IDS, hf_kwargs=None, positions=None, seg=None):
    seg = torch.ones_like(ids) if seg is None else seg
    with torch.no_grad():
        expected = hf(input_ids=ids, **(hf_kwargs or {})).logits
        emb = ours.embedding(ids, seg, positions=positions) if positions is not None else ours.embedding(ids, seg)
        got = ours.target.lm.logits(ours.encoder(emb, seg, positions=positions))
    keep = seg.bool()
    torch.testing.assert_close(got[keep], expected[keep], rtol=1e-5, atol=1e-5)
    assert expected.abs().max() > 0.5                 # logits large enough for the bar to mean something


@pytest.mark.parametrize("variant", ["llama_gqa_llama3_scaling", "llama_mqa_tied", "qwen2"])
def test_logits_match_transformers_llama_family(variant):
    V, H, heads, layers = 64, 32, 4, 2
    common = dict(vocab_size=V, hidden_size=H, intermediate_size=88, num_hidden_layers=layers,
                  num_attention_heads=heads, max_position_embeddings=64, rms_norm_eps=1e-6,
                  attn_implementation="eager")
    ours_changes = dict(vocab_size=V, hidden_size=H, emb_size=H, heads_num=heads, layers_num=layers)
    if variant == "llama_gqa_llama3_scaling":
        rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
        hf_config = transformers.LlamaConfig(num_key_value_heads=2, rope_parameters=rope, **common)
        ours_changes.update(kv_heads_num=2, rope_theta=500000.0,
                            rope_scaling={"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                          "high_freq_factor": 4.0, "original_max_position_embeddings": 16})
        hf_cls, tied = transformers.LlamaForCausalLM, False
    elif variant == "llama_mqa_tied":
        hf_config = transformers.LlamaConfig(num_key_value_heads=1, tie_word_embeddings=True, **common)
        ours_changes.update(kv_heads_num=1, tie_weights=True)
        hf_cls, tied = transformers.LlamaForCausalLM, True
    else:
        hf_config = transformers.Qwen2Config(num_key_value_heads=2, rope_parameters={"rope_type": "default",
                                             "rope_theta": 1000000.0}, tie_word_embeddings=True, **common)
        ours_changes.update(kv_heads_num=2, rope_theta=1000000.0, tie_weights=True, attention_qkv_bias=True)
        hf_cls, tied = transformers.Qwen2ForCausalLM, True
    hf = fill_random(hf_cls(hf_config))
    ours = build_model(llama_config(**ours_changes)).eval()
    ours.load_state_dict(llama_family_state(hf.state_dict(), layers, tied), strict=True)
    assert_parity(ours, hf)
    # A left-padded batch with per-row positions: the real tokens' logits are the unpadded ones'.
    seg = torch.tensor([[1] * 10, [0, 0, 0] + [1] * 7])
    positions = (seg.cumsum(1) - 1).clamp(min=0)
    assert_parity(ours, hf, hf_kwargs={"attention_mask": seg, "position_ids": positions}, positions=positions, seg=seg)


def test_logits_match_transformers_bloom():
    V, H, heads, layers = 64, 32, 4, 2
    hf_config = transformers.BloomConfig(vocab_size=V, hidden_size=H, n_layer=layers, n_head=heads,
                                         layer_norm_epsilon=1e-5, attn_implementation="eager")
    hf = fill_random(transformers.BloomForCausalLM(hf_config), scale=0.2)
    ours = build_model(bloom_config(vocab_size=V, feedforward_size=4 * H)).eval()
    ours.load_state_dict(bloom_state(hf.state_dict(), layers, heads, H // heads), strict=True)
    assert_parity(ours, hf)
    seg = torch.tensor([[1] * 10, [0, 0] + [1] * 8])
    positions = (seg.cumsum(1) - 1).clamp(min=0)
    assert_parity(ours, hf, hf_kwargs={"attention_mask": seg}, positions=positions, seg=seg)


# ---------------------------------------------------------------------------------------------- configs

def test_tencentpretrain_spellings_load():
    tp = dict(emb_size=64, feedforward_size=172, hidden_size=64, hidden_act="silu", heads_num=8, local_kv_heads_num=2,
              layers_num=2, dropout=0.0, data_processor="lm", max_seq_length=128, embedding=["word"],
              remove_transformer_bias=True, remove_embedding_layernorm=True, rotary_position_embedding=True,
              encoder="transformer", feed_forward="gated", mask="causal", layernorm_positioning="pre",
              layernorm="rms", target=["lm"], vocab_size=100)
    c = config_from_dict(tp, "llama2_70b_config.json")
    assert c.kv_heads_num == 2 and c.kv_heads == 2 and c.rotary_position_embedding
    assert build_model(c).encoder.layers[0].attention.key.weight.shape == (16, 64)
    bloom = dict(emb_size=64, feedforward_size=256, hidden_size=64, hidden_act="gelu", heads_num=4, layers_num=2,
                 dropout=0.0, data_processor="lm", embedding=["word"], remove_transformer_bias=False,
                 has_lmtarget_bias=False, remove_embedding_layernorm=True, encoder="transformer", mask="causal",
                 layernorm_positioning="pre", target=["lm"], tie_weights=True, alibi_position_embedding=True,
                 layer_number_scale=True, vocab_size=100)
    assert config_from_dict(bloom, "bloom_1b1_config.json").alibi_position_embedding
    with pytest.raises(ConfigError, match="local_kv_heads_num.*kv_heads_num"):
        config_from_dict({**tp, "kv_heads_num": 4}, "x.json")


@pytest.mark.parametrize("changes,key", [
    ({"kv_heads_num": 3}, "kv_heads_num"),
    ({"kv_heads_num": -1}, "kv_heads_num"),
    ({"alibi_position_embedding": True}, "rotary_position_embedding"),
    ({"relative_position_embedding": True}, "relative_position_embedding"),
    ({"rope_theta": 0.0}, "rope_theta"),
    ({"rope_scaling": {"type": "yarn"}}, "rope_scaling.type"),
    ({"rope_scaling": {"type": "linear", "factor": 0.5}}, "rope_scaling.factor"),
    ({"rope_scaling": {"type": "llama3", "factor": 8.0}}, "rope_scaling.original_max_position_embeddings"),
    ({"rope_scaling": {"type": "llama3", "factor": 8.0, "original_max_position_embeddings": 64,
                       "low_freq_factor": 4.0, "high_freq_factor": 1.0}}, "rope_scaling.low_freq_factor"),
    ({"rotary_position_embedding": False, "rope_scaling": {"type": "linear", "factor": 2.0}}, "rope_scaling"),
    ({"attention_head_size": 7}, "rotary_position_embedding"),
    ({"encoder": "deberta", "target": ["lm"]}, "deberta"),
])
def test_bad_llm_options_name_the_key(changes, key):
    with pytest.raises(ConfigError) as exc:
        llama_config(**changes)
    assert key in str(exc.value) and "<test>" in str(exc.value)


def test_rotary_with_a_decoder_is_refused():
    with pytest.raises(ConfigError, match="rotary_position_embedding.*decoder"):
        config_from_dict(dict(embedding=["word"], tgt_embedding=["word"], decoder="transformer", target=["lm"],
                              rotary_position_embedding=True, emb_size=32, hidden_size=32, heads_num=4,
                              feedforward_size=64, layers_num=1), "<t5-like>")

"""Layers: attention against a hand-written reference, masks, norms, feed-forward, pooling, activations."""

import math

import pytest
import torch
import torch.nn.functional as F

from uer.layers.activations import ACTIVATIONS
from uer.layers.attention import MultiHeadAttention, PositionScheme
from uer.layers.feed_forward import DenseFeedForward, GatedFeedForward, build_feed_forward
from uer.layers.masks import AttentionMask, build_attention_mask
from uer.layers.norms import RMSNorm, build_norm
from uer.layers.pooling import ClassificationHead, pool

HIDDEN, HEADS, HEAD = 32, 4, 8


def make_attention(seed=0, bias=True):
    torch.manual_seed(seed)
    att = MultiHeadAttention(HIDDEN, HEADS, HEAD, dropout=0.0, bias=bias).eval()
    with torch.no_grad():   # non-zero biases so a bias bug would show
        for p in att.parameters():
            p.normal_(0, 0.3)
    return att


def reference_mask(kind, seg):
    """(B, 1, L, L) bool "may attend", built independently of uer.layers.masks."""
    batch, length = seg.shape
    keep = (seg > 0)[:, None, None, :]
    if kind == "fully_visible":
        return keep.expand(batch, 1, length, length)
    causal = torch.tril(torch.ones(length, length, dtype=torch.bool))[None, None]
    if kind == "causal":
        return causal & keep
    prefix = (seg == 1)[:, None, None, :]
    return (causal | prefix) & keep


def reference_attention(att, x, allowed):
    """Explicit softmax(Q K^T / sqrt(d) + mask) V, then the output projection."""
    batch, length, _ = x.shape

    def heads(t):
        return t.view(batch, length, HEADS, HEAD).transpose(1, 2)

    q, k, v = heads(att.query(x)), heads(att.key(x)), heads(att.value(x))
    scores = q @ k.transpose(-1, -2) / math.sqrt(HEAD)
    scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    y = (probs @ v).transpose(1, 2).reshape(batch, length, HEADS * HEAD)
    return att.output(y)


SEG_PADDED = torch.tensor([[1, 1, 1, 2, 2, 0, 0],
                           [1, 1, 2, 2, 2, 2, 2],
                           [1, 2, 0, 0, 0, 0, 0]])


# ---------------------------------------------------------------------- masks

def test_mask_forms_are_the_cheapest_sdpa_understands():
    full = torch.ones(2, 5, dtype=torch.long)
    m = build_attention_mask("fully_visible", full)
    assert m.attn_mask is None and m.is_causal is False
    m = build_attention_mask("causal", full)
    assert m.attn_mask is None and m.is_causal is True
    assert m == AttentionMask(None, True)
    # causal_with_prefix always needs an explicit mask
    m = build_attention_mask("causal_with_prefix", torch.tensor([[1, 1, 2, 2]]))
    assert m.attn_mask is not None and m.is_causal is False
    with pytest.raises(ValueError):
        build_attention_mask("sideways", torch.tensor([[1, 0]]))


@pytest.mark.parametrize("kind", ["fully_visible", "causal", "causal_with_prefix"])
def test_mask_values_match_reference_at_real_queries(kind):
    m = build_attention_mask(kind, SEG_PADDED)
    assert m.attn_mask.dtype == torch.bool and m.is_causal is False
    ref = reference_mask(kind, SEG_PADDED)
    got = m.attn_mask.expand_as(ref)
    real_q = (SEG_PADDED > 0)[:, None, :, None].expand_as(ref)
    assert torch.equal(got[real_q], ref[real_q])
    # Every query row sees at least one key (no all -inf softmax rows).
    assert bool(got.any(-1).all())


def test_causal_with_prefix_prefix_keys_visible_to_all():
    seg = torch.tensor([[1, 1, 1, 2, 2, 2]])
    m = build_attention_mask("causal_with_prefix", seg).attn_mask[0, 0]
    assert bool(m[:, :3].all())                      # prefix visible from every position
    expected_suffix = torch.tril(torch.ones(6, 6, dtype=torch.bool))[:, 3:]
    assert torch.equal(m[:, 3:], expected_suffix)    # the rest is causal


# ---------------------------------------------------------------------- attention vs reference

@pytest.mark.parametrize("kind", ["fully_visible", "causal", "causal_with_prefix"])
def test_attention_matches_reference_with_padding(kind):
    att = make_attention()
    torch.manual_seed(1)
    x = torch.randn(3, 7, HIDDEN)
    out = att(x, build_attention_mask(kind, SEG_PADDED))
    ref = reference_attention(att, x, reference_mask(kind, SEG_PADDED))
    real = SEG_PADDED > 0
    assert out.shape == x.shape
    torch.testing.assert_close(out[real], ref[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["fully_visible", "causal", "causal_with_prefix"])
def test_attention_matches_reference_without_padding(kind):
    att = make_attention(bias=False)
    torch.manual_seed(2)
    seg = torch.tensor([[1, 1, 1, 2, 2, 2], [1, 1, 1, 1, 2, 2]])
    x = torch.randn(2, 6, HIDDEN)
    out = att(x, build_attention_mask(kind, seg))
    ref = reference_attention(att, x, reference_mask(kind, seg))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert att.query.bias is None and att.output.bias is None


def test_is_causal_fast_path_when_no_padding(monkeypatch):
    calls = []
    real_sdpa = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    att = make_attention()
    x = torch.randn(2, 5, HIDDEN)
    out = att(x, build_attention_mask("causal", torch.ones(2, 5, dtype=torch.long)))
    assert calls[-1]["is_causal"] is True and calls[-1]["attn_mask"] is None
    ref = reference_attention(att, x, reference_mask("causal", torch.ones(2, 5, dtype=torch.long)))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    att(x, build_attention_mask("fully_visible", torch.ones(2, 5, dtype=torch.long)))
    assert calls[-1]["is_causal"] is False and calls[-1]["attn_mask"] is None


def test_causal_never_attends_forward_outputs():
    att = make_attention()
    torch.manual_seed(3)
    x = torch.randn(2, 8, HIDDEN)
    for seg in (torch.ones(2, 8, dtype=torch.long),                    # is_causal fast path
                torch.tensor([[1] * 8, [1] * 6 + [0] * 2])):            # explicit mask
        mask = build_attention_mask("causal", seg)
        base = att(x, mask)
        for j in range(1, 8):
            x2 = x.clone()
            x2[:, j] += torch.randn(2, HIDDEN) * 5
            out = att(x2, mask)
            assert torch.equal(out[:, :j], base[:, :j]), f"position < {j} changed"
            assert not torch.allclose(out[0, j], base[0, j])


def test_causal_gradients_of_earlier_outputs_wrt_later_inputs_are_zero():
    att = make_attention()
    for seg in (torch.ones(1, 6, dtype=torch.long), torch.tensor([[1, 1, 1, 1, 1, 0]])):
        mask = build_attention_mask("causal", seg)
        for j in range(1, 6):
            x = torch.randn(1, 6, HIDDEN, requires_grad=True)
            out = att(x, mask)
            (grad,) = torch.autograd.grad(out[:, :j].pow(2).sum(), x)
            assert bool((grad[:, j:] == 0).all()), f"outputs before {j} depend on later inputs"
            assert bool((grad[:, :j] != 0).any())


def test_fully_visible_does_see_forward():
    att = make_attention()
    x = torch.randn(1, 4, HIDDEN, requires_grad=True)
    out = att(x, build_attention_mask("fully_visible", torch.ones(1, 4, dtype=torch.long)))
    (grad,) = torch.autograd.grad(out[:, 0].sum(), x)
    assert bool((grad[:, 3] != 0).any())


@pytest.mark.parametrize("kind", ["fully_visible", "causal", "causal_with_prefix"])
def test_padding_keys_are_ignored(kind):
    att = make_attention()
    torch.manual_seed(4)
    x = torch.randn(3, 7, HIDDEN)
    mask = build_attention_mask(kind, SEG_PADDED)
    base = att(x, mask)
    pad = SEG_PADDED == 0
    x2 = x.clone()
    x2[pad] = torch.randn(int(pad.sum()), HIDDEN) * 10
    out = att(x2, mask)
    real = ~pad
    torch.testing.assert_close(out[real], base[real], atol=1e-6, rtol=0)


def test_dropout_only_in_training():
    torch.manual_seed(0)
    att = MultiHeadAttention(HIDDEN, HEADS, HEAD, dropout=0.5)
    x = torch.randn(2, 6, HIDDEN)
    mask = AttentionMask(None)
    att.eval()
    assert torch.equal(att(x, mask), att(x, mask))
    att.train()
    assert not torch.allclose(att(x, mask), att(x, mask))


class _AddBias(PositionScheme):
    def __init__(self, bias):
        super().__init__()
        self.b = bias

    def bias(self, q_len, k_len, device, positions=None):
        return self.b


def test_position_bias_is_added_to_scores_and_combined_with_causal():
    att = make_attention()
    torch.manual_seed(5)
    x = torch.randn(2, 5, HIDDEN)
    bias = torch.randn(HEADS, 5, 5)
    seg = torch.ones(2, 5, dtype=torch.long)
    out = att(x, build_attention_mask("causal", seg), position=_AddBias(bias))
    # reference with the bias folded in
    batch, length = 2, 5

    def heads(t):
        return t.view(batch, length, HEADS, HEAD).transpose(1, 2)

    q, k, v = heads(att.query(x)), heads(att.key(x)), heads(att.value(x))
    scores = q @ k.transpose(-1, -2) / math.sqrt(HEAD) + bias
    scores = scores.masked_fill(~torch.tril(torch.ones(5, 5, dtype=torch.bool)), float("-inf"))
    ref = att.output((scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, -1))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    # the default scheme changes nothing
    plain = att(x, build_attention_mask("causal", seg))
    torch.testing.assert_close(att(x, build_attention_mask("causal", seg), position=PositionScheme()), plain)


# ---------------------------------------------------------------------- norms

def test_rmsnorm_formula():
    torch.manual_seed(0)
    norm = RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(3, 5, 16) * 4 + 1
    expected = norm.weight * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(norm(x), expected, atol=1e-5, rtol=1e-5)
    # no centring: the mean is not removed
    with torch.no_grad():
        assert abs(float(norm(torch.full((1, 16), 3.0)).mean() - norm.weight.mean())) < 1e-4
    assert [n for n, _ in norm.named_parameters()] == ["weight"]


def test_rmsnorm_keeps_input_dtype():
    norm = RMSNorm(8).to(torch.bfloat16)
    y = norm(torch.randn(2, 8, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16


def test_build_norm_kinds():
    for kind in ("rms", "t5"):
        n = build_norm(kind, 8, 1e-5)
        assert isinstance(n, RMSNorm) and n.eps == 1e-5 and n.weight.shape == (8,)
    n = build_norm("normal", 8, 1e-12)
    assert isinstance(n, torch.nn.LayerNorm) and n.eps == 1e-12 and n.normalized_shape == (8,)
    x = torch.randn(4, 8)
    torch.testing.assert_close(n(x), F.layer_norm(x, (8,), eps=1e-12))


# ---------------------------------------------------------------------- feed-forward

def test_dense_feed_forward_formula_and_shapes():
    torch.manual_seed(0)
    ff = build_feed_forward("dense", 16, 48, "relu")
    assert isinstance(ff, DenseFeedForward)
    assert ff.linear_1.weight.shape == (48, 16) and ff.linear_2.weight.shape == (16, 48)
    x = torch.randn(2, 3, 16)
    expected = F.linear(F.relu(F.linear(x, ff.linear_1.weight, ff.linear_1.bias)),
                        ff.linear_2.weight, ff.linear_2.bias)
    torch.testing.assert_close(ff(x), expected)
    assert sum(p.numel() for p in ff.parameters()) == 16 * 48 + 48 + 48 * 16 + 16


def test_gated_feed_forward_formula_and_shapes():
    torch.manual_seed(0)
    ff = build_feed_forward("gated", 16, 48, "silu", bias=False)
    assert isinstance(ff, GatedFeedForward)
    assert ff.linear_gate.weight.shape == (48, 16) and ff.linear_1.weight.shape == (48, 16)
    assert ff.linear_2.weight.shape == (16, 48)
    assert all(m.bias is None for m in (ff.linear_gate, ff.linear_1, ff.linear_2))
    x = torch.randn(2, 3, 16)
    wg, wu, wd = ff.linear_gate.weight, ff.linear_1.weight, ff.linear_2.weight
    expected = (F.silu(x @ wg.T) * (x @ wu.T)) @ wd.T
    torch.testing.assert_close(ff(x), expected, atol=1e-5, rtol=1e-5)
    assert ff(x).shape == x.shape
    assert sum(p.numel() for p in ff.parameters()) == 3 * 16 * 48


# ---------------------------------------------------------------------- activations

def test_activations():
    x = torch.linspace(-4, 4, 41)
    torch.testing.assert_close(ACTIVATIONS["gelu"](x), 0.5 * x * (1 + torch.erf(x / math.sqrt(2))))
    tanh_gelu = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    for name in ("gelu_fast", "gelu_new", "gelu_pytorch_tanh"):
        torch.testing.assert_close(ACTIVATIONS[name](x), tanh_gelu, atol=1e-6, rtol=1e-6)
    # Each spelling computes as the implementation it converts from, bit for bit.
    wide = torch.randn(10000) * 6
    assert torch.equal(ACTIVATIONS["gelu_fast"](wide), F.gelu(wide, approximate="tanh"))
    assert torch.equal(ACTIVATIONS["gelu_pytorch_tanh"](wide), F.gelu(wide, approximate="tanh"))
    transformers = pytest.importorskip("transformers")
    from transformers.activations import ACT2FN
    assert torch.equal(ACTIVATIONS["gelu_new"](wide), ACT2FN["gelu_new"](wide))
    assert torch.equal(ACTIVATIONS["gelu_pytorch_tanh"](wide), ACT2FN["gelu_pytorch_tanh"](wide))
    assert transformers is not None
    assert not torch.allclose(ACTIVATIONS["gelu"](x), tanh_gelu, atol=1e-6, rtol=0)
    torch.testing.assert_close(ACTIVATIONS["relu"](x), x.clamp(min=0))
    torch.testing.assert_close(ACTIVATIONS["silu"](x), x * torch.sigmoid(x))
    torch.testing.assert_close(ACTIVATIONS["swish"](x), x * torch.sigmoid(x))
    torch.testing.assert_close(ACTIVATIONS["tanh"](x), torch.tanh(x))
    from uer.config import HIDDEN_ACTS
    assert set(HIDDEN_ACTS) == set(ACTIVATIONS)


# ---------------------------------------------------------------------- pooling

def _pool_inputs():
    torch.manual_seed(0)
    hidden = torch.randn(3, 5, 4)
    seg = torch.tensor([[1, 1, 2, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    hidden[seg == 0] = 1e4     # padding holds huge values: any leak shows
    return hidden, seg


def test_pool_first_mean_max_last():
    hidden, seg = _pool_inputs()
    torch.testing.assert_close(pool(hidden, seg, "first"), hidden[:, 0])
    lengths = [3, 5, 1]
    mean = torch.stack([hidden[i, :n].mean(0) for i, n in enumerate(lengths)])
    mx = torch.stack([hidden[i, :n].max(0).values for i, n in enumerate(lengths)])
    last = torch.stack([hidden[i, n - 1] for i, n in enumerate(lengths)])
    torch.testing.assert_close(pool(hidden, seg, "mean"), mean)
    torch.testing.assert_close(pool(hidden, seg, "max"), mx)
    torch.testing.assert_close(pool(hidden, seg, "last"), last)
    with pytest.raises(ValueError):
        pool(hidden, seg, "median")


def test_pool_all_padding_row_does_not_divide_by_zero():
    hidden = torch.randn(1, 3, 4)
    seg = torch.zeros(1, 3, dtype=torch.long)
    assert torch.isfinite(pool(hidden, seg, "mean")).all()
    torch.testing.assert_close(pool(hidden, seg, "last"), hidden[:, 0])


def test_classification_head():
    torch.manual_seed(0)
    head = ClassificationHead(4, 3, pooling="mean")
    hidden, seg = _pool_inputs()
    logits = head(hidden, seg)
    assert logits.shape == (3, 3)
    expected = head.linear_2(torch.tanh(head.linear_1(pool(hidden, seg, "mean"))))
    torch.testing.assert_close(logits, expected)

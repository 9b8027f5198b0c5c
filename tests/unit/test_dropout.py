"""The CPU dropout (uer/layers/dropout.py): torch's semantics — keep rate, expectation, the mask shared
by forward and backward, eval and p = 0 identity, reproducible from the default generator — and its
attention path equal to SDPA's on every mask form."""

import pytest
import torch
import torch.nn.functional as F

from uer.layers.dropout import Dropout, attention_with_dropout, dropout, keep_mask, scaled_dot_product_attention


def test_keep_rate_and_expectation():
    torch.manual_seed(0)
    for p in (0.1, 0.5, 0.9):
        x = torch.ones(1 << 20)
        y = dropout(x, p, True)
        kept = (y != 0).float().mean().item()
        assert abs(kept - (1 - p)) < 4e-3, (p, kept)           # ~8 standard deviations of 2^20 draws
        assert abs(y.mean().item() - 1.0) < 1e-2 / (1 - p)      # kept values scaled by 1 / (1 - p)
        values = torch.unique(y).tolist()
        assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / (1 - p), rel=1e-4)


def test_lanes_are_independent():
    """Four 16-bit lanes come from one 64-bit draw: neighbours must not be correlated."""
    torch.manual_seed(1)
    m, _ = keep_mask((1 << 20,), 0.5)
    m = m.float()
    for shift in (1, 2, 3, 4):
        both = (m[:-shift] * m[shift:]).mean().item()
        assert abs(both - 0.25) < 3e-3, shift


def test_backward_uses_the_forward_mask():
    torch.manual_seed(2)
    x = torch.randn(64, 33, requires_grad=True)
    y = dropout(x, 0.3, True)
    g = torch.randn_like(y)
    y.backward(g)
    kept = y != 0
    assert torch.allclose(x.grad, torch.where(kept, g * (y / x).detach(), torch.zeros_like(g)), atol=1e-5)
    assert (x.grad[~kept] == 0).all()


def test_identity_when_off_and_reproducible_when_seeded():
    x = torch.randn(10, 10)
    assert torch.equal(dropout(x, 0.1, False), x) and torch.equal(dropout(x, 0.0, True), x)
    assert (dropout(x, 1.0, True) == 0).all()
    module = Dropout(0.2).eval()
    assert torch.equal(module(x), x)
    torch.manual_seed(3)
    a = dropout(x, 0.2, True)
    b = dropout(x, 0.2, True)
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.2, True), a) and not torch.equal(a, b)
    with pytest.raises(ValueError, match="between 0 and 1"):
        Dropout(1.5)


def qkv(heads=4, kv_heads=4, lq=6, lk=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, heads, lq, 8, generator=g), torch.randn(2, kv_heads, lk, 8, generator=g),
            torch.randn(2, kv_heads, lk, 8, generator=g))


@pytest.mark.parametrize("form", ["none", "bool", "float", "causal", "causal_cached", "empty_row", "gqa"])
def test_attention_equals_sdpa_when_nothing_is_dropped(form):
    """p below 1/65536 drops nothing: the own path must be SDPA's math exactly, mask forms included."""
    q, k, v = qkv(kv_heads=2 if form == "gqa" else 4, lq=3 if form == "causal_cached" else 6)
    mask, causal = None, form in ("causal", "causal_cached")
    if form in ("bool", "empty_row", "gqa"):
        mask = torch.rand(2, 1, q.size(2), 6, generator=torch.Generator().manual_seed(1)) > 0.3
        mask[..., 0] = True
        if form == "empty_row":
            mask[0, 0, 2] = False          # this query may attend to nothing
    if form == "float":
        mask = torch.randn(2, 4, 6, 6)
    kwargs = {"enable_gqa": True} if form == "gqa" and mask is None else {}
    if form == "gqa":
        want = F.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), attn_mask=mask)
    elif causal and form == "causal_cached":
        # queries are the last 3 of 6 positions: SDPA's is_causal aligns top-left, so give the mask
        want = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(3, 6, dtype=torch.bool).tril(3))
    else:
        want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    got = scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=1e-7, is_causal=causal, **kwargs)
    if form == "empty_row":
        assert (got[0, :, 2] == 0).all()
        want = torch.nan_to_num(want)
    assert torch.allclose(got, want, atol=1e-6), (got - want).abs().max()


def test_attention_dropout_drops_probabilities_at_the_rate():
    torch.manual_seed(4)
    q, k, v = qkv(lq=64, lk=64)
    v = torch.eye(64).expand(2, 4, 64, 64)        # the output is the dropped, rescaled probability matrix
    y = attention_with_dropout(q, k, v, None, False, 0.25, None)
    assert abs((y == 0).float().mean().item() - 0.25) < 0.01
    probs = torch.softmax(q @ k.transpose(-2, -1) / 8 ** 0.5, -1)
    kept = y != 0
    assert torch.allclose(y[kept], probs[kept] / 0.75, atol=1e-6)


def test_eval_and_gpu_less_paths_use_sdpa():
    q, k, v = qkv()
    with torch.no_grad():
        torch.manual_seed(5)
        a = scaled_dot_product_attention(q, k, v, dropout_p=0.5)
        torch.manual_seed(5)
        b = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    assert torch.equal(a, b)     # without autograd (inference) SDPA's own kernel runs

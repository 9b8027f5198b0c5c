"""Unpadding ("unpad": true): the encoder on the real tokens only gives the padded encoder's outputs,
gradients and losses, and the feed-forward sees only real tokens."""

import dataclasses

import pytest
import torch

from uer.config import config_from_dict
from uer.errors import ConfigError
from uer.layers.unpad import repad, unpad
from uer.models import build_model

VOCAB = 100
BERT = {"embedding": ["word", "pos", "seg"], "vocab_size": VOCAB, "emb_size": 32, "hidden_size": 32,
        "feedforward_size": 64, "heads_num": 4, "layers_num": 2, "max_seq_length": 16, "dropout": 0.0,
        "mask": "fully_visible", "layernorm_positioning": "post", "target": ["mlm"], "tie_weights": True}
# ModernBERT-like: rotary, pre-norm RMS, gated FFN without biases, grouped-query attention.
ROTARY = {**BERT, "embedding": ["word"], "rotary_position_embedding": True, "layernorm_positioning": "pre",
          "layernorm": "rms", "feed_forward": "gated", "hidden_act": "silu", "remove_transformer_bias": True,
          "kv_heads_num": 2}
# MosaicBERT-like: ALiBi, GLU feed-forward, post-norm; 6 heads (slopes beyond a power of two).
ALIBI = {**BERT, "embedding": ["word", "seg"], "alibi_position_embedding": True, "feed_forward": "gated",
         "hidden_act": "gelu", "heads_num": 6, "attention_head_size": 8}
# ALBERT: factorised embeddings (the projection runs on the stream) and one shared layer.
ALBERT = {**BERT, "emb_size": 16, "factorized_embedding_parameterization": True, "parameter_sharing": True,
          "layers_num": 3}
CONFIGS = {"bert": BERT, "rotary": ROTARY, "alibi": ALIBI, "albert": ALBERT}


def batch_with_lengths(lengths, length=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = len(lengths)
    src = torch.randint(5, VOCAB, (b, length), generator=g)
    seg = torch.zeros(b, length, dtype=torch.long)
    for i, n in enumerate(lengths):
        seg[i, :n] = 1
        seg[i, n // 2 + 1:n] = 2          # a second segment where the row is long enough
    src[seg == 0] = 0
    positions = torch.stack([torch.randint(0, n, (3,), generator=g) for n in lengths])
    labels = torch.randint(5, VOCAB, positions.shape, generator=g)
    labels[0, 2] = -100
    return {"src": src, "seg": seg, "mlm_positions": positions, "mlm_labels": labels}


def twin_models(base):
    """The same weights with and without unpadding."""
    config = config_from_dict(base, "test")
    torch.manual_seed(0)
    padded = build_model(config)
    unpadded = build_model(dataclasses.replace(config, unpad=True))
    unpadded.load_state_dict(padded.state_dict())
    return padded, unpadded


def random_lengths(seed):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 12, (4,), generator=g).tolist()
    lengths[1] = 1                         # a one-token sequence
    lengths[3] = 12                        # and a full one
    return lengths


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("seed", [0, 1])
def test_unpadded_encoder_equals_padded_on_real_tokens(name, seed):
    padded, unpadded = twin_models(CONFIGS[name])
    batch = batch_with_lengths(random_lengths(seed), seed=seed)
    real = batch["seg"] > 0
    with torch.no_grad():
        want = padded.encode(batch["src"], batch["seg"])
        got = unpadded.encode(batch["src"], batch["seg"])
    assert torch.allclose(got[real], want[real], atol=1e-5, rtol=0)
    assert not torch.allclose(want[real], torch.zeros_like(want[real]))
    assert (got[~real] == 0).all()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_unpadded_mlm_loss_and_gradients_equal_padded(name):
    padded, unpadded = twin_models(CONFIGS[name])
    batch = batch_with_lengths(random_lengths(2), seed=2)
    losses = []
    for model in (padded, unpadded):
        out = model(batch)
        out["loss"].backward()
        losses.append(out["loss"].detach())
    assert torch.allclose(losses[0], losses[1], atol=1e-6, rtol=0)
    grads_p = dict(padded.named_parameters())
    for key, p in unpadded.named_parameters():
        assert p.grad is not None, key
        assert torch.allclose(p.grad, grads_p[key].grad, atol=1e-5, rtol=1e-4), key


def test_unpadded_activation_checkpointing_same_gradients():
    _, model = twin_models(ROTARY)
    batch = batch_with_lengths([5, 1, 9, 12])
    model(batch)["loss"].backward()
    want = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.encoder.activation_checkpointing = True
    model(batch)["loss"].backward()
    for a, b in zip(want, (p.grad for p in model.parameters())):
        assert torch.allclose(a, b, atol=1e-6)


def test_feed_forward_sees_only_real_tokens():
    """The saving: tokens through every FFN = real tokens (padded: batch x length)."""
    counts = {}
    padded, unpadded = twin_models(BERT)
    lengths = [3, 1, 12, 6]
    batch = batch_with_lengths(lengths)
    for name, model in (("padded", padded), ("unpadded", unpadded)):
        seen = []
        hooks = [layer.feed_forward.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[:-1].numel()))
                 for layer in model.encoder.layers]
        model(batch)
        for h in hooks:
            h.remove()
        counts[name] = seen
    assert counts["unpadded"] == [sum(lengths)] * 2
    assert counts["padded"] == [4 * 12] * 2


def test_unpad_repad_round_trip():
    x = torch.randn(3, 5, 2)
    seg = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    stream, info = unpad(x, seg)
    assert stream.shape == (8, 2) and info.max_len == 5
    assert info.cu_seqlens.tolist() == [0, 2, 7, 8]
    back = repad(stream, info)
    assert torch.equal(back[seg > 0], x[seg > 0]) and (back[seg == 0] == 0).all()


@pytest.mark.parametrize("change, key", [
    ({"mask": "causal", "target": ["lm"]}, "mask"),
    ({"relative_position_embedding": True, "embedding": ["word"]}, "relative_position_embedding"),
    ({"encoder": "deberta"}, "encoder"),
    ({"decoder": "transformer", "tgt_embedding": ["word"], "target": ["lm"]}, "decoder"),
])
def test_unsupported_combinations_refused(change, key):
    with pytest.raises(ConfigError, match=f"key '{key}'.*\"unpad\": false"):
        config_from_dict({**BERT, **change, "unpad": True}, "test.json")


def test_packed_documents_refused():
    _, model = twin_models(BERT)
    batch = batch_with_lengths([4, 4])
    with pytest.raises(ConfigError, match="unpad"):
        model.encode(batch["src"], batch["seg"], documents=torch.zeros_like(batch["seg"]))


@pytest.mark.parametrize("name", ["rotary", "alibi"])
def test_unpadded_under_bf16_autocast_matches_padded(name):
    """bf16 autocast (the training setting): the same computation in the same dtypes, so the two
    agree to bf16 rounding, and the output dtype is the padded encoder's."""
    padded, unpadded = twin_models(CONFIGS[name])
    batch = batch_with_lengths([7, 1, 12, 4], seed=3)
    real = batch["seg"] > 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        want = padded.encode(batch["src"], batch["seg"])
        got = unpadded.encode(batch["src"], batch["seg"])
    assert got.dtype == want.dtype
    assert torch.allclose(got[real].float(), want[real].float(), atol=5e-2, rtol=0)


def reference_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p=0.0,
                     softmax_scale=None, causal=False, alibi_slopes=None):
    """flash_attn_varlen_func as its documentation defines it (bidirectional): per sequence,
    softmax(q.k * scale - slope * |i - j|) v, key/value heads shared by groups of query heads."""
    assert cu_seqlens_q.dtype == torch.int32 and not causal and dropout_p == 0.0
    assert q.is_contiguous() and k.is_contiguous() and max_seqlen_q == max_seqlen_k
    out = []
    bounds = cu_seqlens_q.tolist()
    for start, end in zip(bounds[:-1], bounds[1:]):
        qs, ks, vs = (t[start:end].transpose(0, 1)[None] for t in (q, k, v))     # (1, h, n, d)
        ks, vs = (t.repeat_interleave(q.size(1) // k.size(1), dim=1) for t in (ks, vs))
        bias = None
        if alibi_slopes is not None:
            pos = torch.arange(end - start)
            bias = -alibi_slopes[None, :, None, None] * (pos[:, None] - pos[None, :]).abs()[None, None].float()
        y = torch.nn.functional.scaled_dot_product_attention(qs, ks, vs, attn_mask=bias)
        out.append(y[0].transpose(0, 1))
    return torch.cat(out)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_flash_varlen_wiring_against_its_documented_semantics(name, monkeypatch):
    """The CUDA path (flash-attn's varlen kernel) cannot run here; its wiring — the stream layout,
    cu_seqlens, rotary at each token's own position, ALiBi slopes — is checked on the CPU with a
    reference implementation of the kernel's documented contract standing in for it."""
    import uer.layers.unpad as unpad_module
    monkeypatch.setattr(unpad_module, "flash_attn_varlen_func", reference_varlen)
    monkeypatch.setattr(unpad_module, "_use_flash", lambda q, attention, position: True)
    padded, unpadded = twin_models(CONFIGS[name])
    batch = batch_with_lengths([6, 1, 12, 3], seed=4)
    real = batch["seg"] > 0
    with torch.no_grad():
        want = padded.encode(batch["src"], batch["seg"])
        got = unpadded.encode(batch["src"], batch["seg"])
    assert torch.allclose(got[real], want[real], atol=1e-5, rtol=0)

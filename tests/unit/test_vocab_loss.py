"""The fused vocabulary cross-entropy ("fused_lm_loss", chunked by "lm_loss_chunk_size"): the plain
loss, gradients and accuracy, without the plain path's (positions, vocabulary) temporaries."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from uer.config import config_from_dict
from uer.errors import ConfigError
from uer.models import build_model
from uer.targets.metrics import accuracy
from uer.targets.vocab_loss import vocab_cross_entropy
from uer.tools.largest_tensor import LargestTensor

VOCAB = 100       # padded to 128 rows


def plain(hidden, weight, bias, labels):
    logits = F.linear(hidden, weight, bias)[..., :VOCAB]
    loss = F.cross_entropy(logits.reshape(-1, VOCAB).float(), labels.reshape(-1), ignore_index=-100)
    return loss, accuracy(logits, labels)


def inputs(n=37, h=16, seed=0, ignored=0.3):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g, requires_grad=True)
    weight = torch.randn(128, h, generator=g).mul_(0.5).requires_grad_()
    bias = torch.randn(128, generator=g).requires_grad_()
    labels = torch.randint(0, VOCAB, (n,), generator=g)
    labels[torch.rand(n, generator=g) < ignored] = -100
    return hidden, weight, bias, labels


def grads(loss, tensors):
    return torch.autograd.grad(loss, tensors)


@pytest.mark.parametrize("chunk", [0, 1, 8, 36, 37, 64])
def test_loss_gradients_and_accuracy_equal_plain(chunk):
    hidden, weight, bias, labels = inputs()
    want_loss, want_acc = plain(hidden, weight, bias, labels)
    loss, acc = vocab_cross_entropy(hidden, weight, bias, labels, VOCAB, chunk)
    assert torch.allclose(loss, want_loss, atol=1e-6, rtol=0)
    assert torch.allclose(acc, want_acc)
    for got, want in zip(grads(loss, (hidden, weight, bias)), grads(want_loss, (hidden, weight, bias))):
        assert torch.allclose(got, want, atol=1e-6, rtol=0)


def test_ignored_positions_and_padded_vocab_rows_get_nothing():
    hidden, weight, bias, labels = inputs(ignored=0.5)
    loss, _ = vocab_cross_entropy(hidden, weight, None, labels, VOCAB, 5)
    g_hidden, g_weight = grads(loss, (hidden, weight))
    assert (g_hidden[labels == -100] == 0).all() and (g_hidden[labels != -100] != 0).any()
    assert (g_weight[VOCAB:] == 0).all()          # rows beyond vocab_size are cut, as on the plain path
    labels[:] = -100                              # nothing to predict: NaN, as F.cross_entropy gives
    loss, acc = vocab_cross_entropy(hidden, weight, bias, labels, VOCAB, 5)
    assert torch.isnan(loss) and acc == 0


def test_largest_tensor_is_one_chunk_of_logits():
    """Forward + backward: plain holds (N, vocab) fp32 logits; chunked at most (chunk, vocab)."""
    hidden, weight, bias, labels = inputs(n=512, ignored=0.1)
    largest = {}
    for chunk in (0, 32):
        with LargestTensor() as mode:
            loss = plain(hidden, weight, bias, labels)[0] if chunk == 0 else \
                vocab_cross_entropy(hidden, weight, bias, labels, VOCAB, chunk)[0]
            loss.backward()
        largest[chunk] = mode.largest
    assert largest[0] >= 512 * VOCAB * 4
    # one chunk's logits (before the vocab cut), or the hidden states' gradient, whichever is larger
    assert largest[32] <= max(32 * 128 * 4, hidden.numel() * 4)
    assert largest[32] * 8 <= largest[0]


BERT = {"embedding": ["word", "pos", "seg"], "vocab_size": VOCAB, "emb_size": 32, "hidden_size": 32,
        "feedforward_size": 64, "heads_num": 4, "layers_num": 1, "max_seq_length": 16, "dropout": 0.0,
        "target": ["mlm"], "tie_weights": True}
GPT = {**BERT, "embedding": ["word", "pos"], "mask": "causal", "layernorm_positioning": "pre",
       "target": ["lm"], "has_lmtarget_bias": True}
# encoder-decoder, T5's rescaled tied output: the lm target on the decoder side
T5_SCALE = {**BERT, "embedding": ["word"], "decoder": "transformer", "tgt_embedding": ["word"], "target": ["lm"],
            "share_embedding": True, "scale_tied_output": True, "layernorm_positioning": "pre"}


def batch(lm_positions=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(5, VOCAB, (3, 10), generator=g)
    seg = torch.ones(3, 10, dtype=torch.long)
    seg[1, 6:] = 0
    labels = torch.randint(5, VOCAB, (3, 10), generator=g)
    labels[seg == 0] = -100
    out = {"src": src, "seg": seg, "lm_labels": labels,
           "mlm_positions": torch.tensor([[1, 2, 7], [0, 3, 5], [4, 8, 9]]),
           "mlm_labels": torch.tensor([[7, 8, 9], [10, -100, 12], [13, 14, 15]])}
    tgt_seg = torch.ones(3, 7, dtype=torch.long)
    tgt_seg[2, 4:] = 0
    out.update(tgt_in=torch.randint(5, VOCAB, (3, 7), generator=g), tgt_out=torch.randint(5, VOCAB, (3, 7), generator=g),
               tgt_seg=tgt_seg)
    if lm_positions:        # GLM-style given labels: only these positions are predicted
        out["lm_positions"] = torch.tensor([[1, 2, 3], [0, 4, 0], [9, 8, 7]])
        out["lm_labels"] = torch.tensor([[5, 6, 7], [8, 9, -100], [10, 11, 12]])
    return out


@pytest.mark.parametrize("chunk", [0, 4])
@pytest.mark.parametrize("base, lm_positions", [(BERT, False), (GPT, False), (GPT, True), (T5_SCALE, False)])
def test_model_loss_and_gradients_equal_plain(base, lm_positions, chunk):
    config = config_from_dict({**base, "fused_lm_loss": False}, "test")
    torch.manual_seed(0)
    reference = build_model(config)
    chunked = build_model(dataclasses.replace(config, fused_lm_loss=True, lm_loss_chunk_size=chunk))
    chunked.load_state_dict(reference.state_dict())
    data = batch(lm_positions)
    outs = []
    for model in (reference, chunked):
        out = model(data)
        out["loss"].backward()
        outs.append(out)
    for key in outs[0]:
        assert torch.allclose(outs[0][key], outs[1][key], atol=1e-6, rtol=0), key
    want = dict(reference.named_parameters())
    for name, p in chunked.named_parameters():
        assert torch.allclose(p.grad, want[name].grad, atol=1e-6, rtol=1e-5), name


def test_negative_chunk_size_refused():
    with pytest.raises(ConfigError, match="lm_loss_chunk_size"):
        config_from_dict({**GPT, "lm_loss_chunk_size": -1}, "test.json")


def test_chunks_without_the_fused_loss_refused():
    with pytest.raises(ConfigError, match="fused_lm_loss"):
        config_from_dict({**GPT, "lm_loss_chunk_size": 8, "fused_lm_loss": False}, "test.json")


def test_gradient_scales_with_what_follows_the_loss():
    """The gradients are formed in the forward for d(loss) = 1; backward must scale them by the
    incoming gradient (a loss weight, fp16 loss scaling) and survive a retained second backward."""
    hidden, weight, bias, labels = inputs()
    want = plain(hidden, weight, bias, labels)[0]
    loss = vocab_cross_entropy(hidden, weight, bias, labels, VOCAB, 8)[0]
    for factor in (3.0, -0.5):
        got = grads(loss * factor, (hidden, weight, bias)) if factor < 0 else \
            torch.autograd.grad(loss * factor, (hidden, weight, bias), retain_graph=True)
        for g, r in zip(got, torch.autograd.grad(want * factor, (hidden, weight, bias), retain_graph=True)):
            assert torch.allclose(g, r, atol=1e-5, rtol=0)


def test_frozen_weight_gets_no_gradient_and_eval_forms_none():
    """LoRA freezes the output table: only the hidden states' gradient is formed.  Under no_grad the
    loss and accuracy are the same and nothing is differentiated."""
    hidden, weight, bias, labels = inputs()
    weight.requires_grad_(False)
    bias.requires_grad_(False)
    loss, acc = vocab_cross_entropy(hidden, weight, bias, labels, VOCAB, 8)
    loss.backward()
    want_loss, want_acc = plain(hidden.detach().requires_grad_(), weight, bias, labels)
    assert weight.grad is None and bias.grad is None and hidden.grad is not None
    with torch.no_grad():
        eval_loss, eval_acc = vocab_cross_entropy(hidden, weight, bias, labels, VOCAB, 8)
    assert not eval_loss.requires_grad
    assert torch.allclose(eval_loss, want_loss, atol=1e-6) and torch.allclose(loss, want_loss, atol=1e-6)
    assert eval_acc == acc == want_acc


def test_bf16_autocast_keeps_the_plain_precision():
    """Under bf16 autocast the chunk's projection runs in bf16 and the loss in fp32, as on the plain
    path; the gradients come back in the inputs' dtypes."""
    hidden, weight, bias, labels = inputs(n=64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want, _ = plain(hidden, weight, bias, labels)
        loss, _ = vocab_cross_entropy(hidden, weight, bias, labels, VOCAB, 16)
    assert loss.dtype == want.dtype == torch.float32
    assert torch.allclose(loss, want, atol=1e-5, rtol=0)      # the same bf16 logits, summed in fp32
    for got, ref in zip(grads(loss, (hidden, weight)), grads(want, (hidden, weight))):
        assert got.dtype == ref.dtype and torch.allclose(got, ref, atol=1e-2, rtol=0)

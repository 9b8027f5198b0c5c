"""Cross-entropy over the vocabulary fused with the vocabulary projection ("fused_lm_loss", on by default).

The plain path, ``F.cross_entropy(F.linear(h, w, b)[:, :vocab].float(), labels)``, is the costliest
part of a small model's step after the encoder's matrix products, and not because of its FLOPs: the
logits are cut to the vocabulary (a copy), log-softmaxed (a second tensor), and in backward the
slice, the NLL and the log-softmax each allocate and fill a fresh (positions, vocabulary) gradient.
On BERT-small (CPU, fp32) these element-wise passes cost more than the three matrix products.

Here the loss and its gradients are formed together in the forward, chunk by chunk of positions:
each chunk's logits are projected, turned into softmax - one-hot *in place* (that is the gradient of
the mean loss with respect to the logits), and multiplied straight back into the gradients of the
hidden states, the weight and the bias.  Backward only scales those by the incoming gradient (the
loss is a scalar).  So:

* no (positions, vocabulary) tensor outlives its chunk, and at most one exists at a time: with
  ``lm_loss_chunk_size`` = c (positions per chunk; 0 = all at once) the largest is (c, vocabulary);
* the matrix products are the plain path's three (no recomputation);
* saved for backward: the three gradients themselves (hidden, weight, bias sized).

Precision follows the plain path: under autocast the projections run in the autocast dtype and the
softmax in fp32; otherwise everything runs in the inputs' dtype with the softmax in fp32.  Padded
vocabulary rows (``weight`` may have more rows than ``vocab_size``) get no probability and no gradient.
The loss is the mean over non-ignored (-100) positions: NaN when there is none, like F.cross_entropy.
"""

from typing import Optional, Tuple

import torch

IGNORE_INDEX = -100


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The autocast dtype when autocast is on for t's device, else t's own dtype."""
    device = t.device.type
    if hasattr(torch, "get_autocast_dtype"):          # torch >= 2.4
        if torch.is_autocast_enabled(device):
            return torch.get_autocast_dtype(device)
    elif device == "cpu" and torch.is_autocast_cpu_enabled():
        return torch.get_autocast_cpu_dtype()
    elif device == "cuda" and torch.is_autocast_enabled():
        return torch.get_autocast_gpu_dtype()
    return t.dtype


def _chunk(h: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor], labels: torch.Tensor,
           vocab_size: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One chunk: fp32 logits with the padded rows at -inf, their log-sum-exp, the labels' logits
    (0 where ignored) and the number of correct predictions."""
    logits = (torch.addmm(b, h, w.t()) if b is not None else h @ w.t()).float()
    if logits.size(1) > vocab_size:
        logits[:, vocab_size:] = float("-inf")
    keep = labels != IGNORE_INDEX
    safe = labels.clamp(min=0)
    picked = logits.gather(1, safe.unsqueeze(1)).squeeze(1)
    correct = ((logits.argmax(1) == labels) & keep).sum()
    top = logits.amax(1, keepdim=True)
    logits.sub_(top).exp_()                     # in place: exp(logits - max)
    total = logits.sum(1, keepdim=True)
    lse = top.squeeze(1) + total.squeeze(1).log()
    return logits, total, lse - picked, correct


def _loss_and_gradients(hidden, weight, bias, labels, vocab_size: int, chunk_size: int,
                        need_h: bool, need_w: bool, need_b: bool):
    """The mean loss over the valid positions, the number of correct predictions, and the gradients
    of the mean loss asked for (None otherwise), chunk by chunk of ``chunk_size`` positions."""
    cd = _compute_dtype(hidden)
    with torch.autocast(hidden.device.type, enabled=False):
        h_all, w = hidden.to(cd), weight.to(cd)
        b = bias.to(cd) if bias is not None else None
        count = (labels != IGNORE_INDEX).sum()
        inv = 1.0 / count.float()                 # inf when nothing is predicted -> NaN loss, as plain
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = grad_b = None          # fp32 sums over the chunks
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        correct = torch.zeros((), dtype=torch.long, device=hidden.device)
        n = hidden.size(0)
        step = chunk_size or n
        for start in range(0, n, step):
            h, y = h_all[start:start + step], labels[start:start + step]
            probs, total, row_loss, right = _chunk(h, w, b, y, vocab_size)
            keep = (y != IGNORE_INDEX).float()
            loss += (row_loss * keep).sum()
            correct += right
            if not (need_h or need_w or need_b):
                continue
            # d(mean loss)/d(logits) = (softmax - one_hot) * keep / count, in place over exp(...)
            grad = probs.mul_(keep.unsqueeze(1) * inv / total)
            grad.scatter_add_(1, y.clamp(min=0).unsqueeze(1), -(keep * inv).unsqueeze(1))
            g = grad.to(cd)
            if need_h:
                grad_h[start:start + step] = g @ w
            if need_w:
                part = (g.t() @ h).float()
                grad_w = part if grad_w is None else grad_w.add_(part)
            if need_b:
                part = grad.sum(0)
                grad_b = part if grad_b is None else grad_b.add_(part)
    return loss * inv, correct, grad_h, grad_w, grad_b


class _FusedVocabLoss(torch.autograd.Function):
    """Forward computes the mean loss and its gradients; backward scales them by the incoming gradient."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, labels, vocab_size: int, chunk_size: int):
        need = ctx.needs_input_grad
        loss, correct, grad_h, grad_w, grad_b = _loss_and_gradients(
            hidden, weight, bias, labels, vocab_size, chunk_size, need[0], need[1], bias is not None and need[2])
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        ctx.dtypes = (weight.dtype, bias.dtype if bias is not None else None)
        ctx.mark_non_differentiable(correct)
        return loss, correct

    @staticmethod
    def backward(ctx, grad_loss, _grad_correct):
        grad_h, grad_w, grad_b = ctx.saved_tensors
        scale = grad_loss.float()
        out_h = (grad_h.float() * scale).to(grad_h.dtype) if grad_h is not None else None
        out_w = (grad_w * scale).to(ctx.dtypes[0]) if grad_w is not None else None
        out_b = (grad_b * scale).to(ctx.dtypes[1]) if grad_b is not None else None
        return out_h, out_w, out_b, None, None, None


def vocab_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                        labels: torch.Tensor, vocab_size: int, chunk_size: int = 0
                        ) -> Tuple[torch.Tensor, torch.Tensor]:
    """hidden (..., H), weight (V, H) with V >= vocab_size (padded rows get nothing), bias (V,) or
    None, labels (...) with -100 where ignored -> (mean loss, accuracy over the non-ignored
    positions).  ``chunk_size``: positions whose logits exist at once (0: all)."""
    hidden = hidden.reshape(-1, hidden.size(-1))
    labels = labels.reshape(-1)
    tracked = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (hidden, weight, bias))
    if tracked:
        loss, correct = _FusedVocabLoss.apply(hidden, weight, bias, labels, vocab_size, chunk_size)
    else:
        with torch.no_grad():       # evaluation: the same loss and count, no gradients formed
            loss, correct, *_ = _loss_and_gradients(hidden, weight, bias, labels, vocab_size, chunk_size,
                                                    False, False, False)
    valid = (labels != IGNORE_INDEX).sum()
    return loss, correct.float() / valid.clamp(min=1).float()

"""Cross-entropy over the vocabulary in chunks of positions, never holding the whole (N, vocab) logits.

For an LM head the logits are the largest tensor of the step: GPT-2's 8 x 1024 positions x 50k
vocabulary are 1.6 GB in fp32, plus as much again for their gradient.  Here each chunk of
``chunk_size`` positions is projected, scored and dropped; ``torch.utils.checkpoint`` recomputes a
chunk's logits when the backward pass reaches it, so at any time at most one chunk's logits (and
their gradient) exist.  The price is a second vocabulary projection per chunk in backward (about a
third more head FLOPs).  The checkpoint keeps the autocast state, so bf16 training is unchanged: the
projection runs in the autocast dtype, the loss in fp32 as on the plain path.

The result equals ``F.cross_entropy(F.linear(h, w, b)[:, :vocab].float(), labels, ignore_index=-100)``
(a mean over the non-ignored positions; NaN when there is none, like it) up to summation order.
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

IGNORE_INDEX = -100


def _chunk_scores(hidden: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                  labels: torch.Tensor, vocab_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The summed loss and the number of correct predictions of one chunk of positions."""
    logits = F.linear(hidden, weight, bias)[..., :vocab_size].float()
    loss = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")
    with torch.no_grad():
        correct = ((logits.argmax(-1) == labels) & (labels != IGNORE_INDEX)).sum()
    return loss, correct


def chunked_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                          labels: torch.Tensor, vocab_size: int, chunk_size: int
                          ) -> Tuple[torch.Tensor, torch.Tensor]:
    """hidden (..., H), weight (V, H) with V >= vocab_size (padded rows are cut), bias (V,) or None,
    labels (...) with -100 where ignored -> (mean loss, accuracy over the non-ignored positions)."""
    hidden = hidden.reshape(-1, hidden.size(-1))
    labels = labels.reshape(-1)
    total = hidden.new_zeros((), dtype=torch.float32)
    correct = torch.zeros((), dtype=torch.long, device=hidden.device)
    recompute = torch.is_grad_enabled()
    for start in range(0, hidden.size(0), chunk_size):
        args = (hidden[start:start + chunk_size], weight, bias, labels[start:start + chunk_size], vocab_size)
        loss, right = checkpoint(_chunk_scores, *args, use_reentrant=False) if recompute else _chunk_scores(*args)
        total = total + loss
        correct = correct + right
    valid = (labels != IGNORE_INDEX).sum()
    return total / valid, correct.float() / valid.clamp(min=1).float()

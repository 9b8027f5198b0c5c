"""What a batch costs: its real tokens and its training FLOPs, for tokens/s, TFLOP/s and MFU.

Conventions (docs/performance.md):

* A real token is one that is not padding: ``seg > 0`` on the input side (the collator's
  ``tokens`` field), plus ``tgt_seg > 0`` on the decoder side of an encoder-decoder model.  The
  same count for encoders, decoder-only and encoder-decoder models, and for every system a
  benchmark compares.
* Training FLOPs per token = 6 x the matrix parameters the token passes through (2 forward,
  4 backward, PaLM appendix B / Chinchilla) + 12 x layers x attention width x sequence length
  for attention scores and values, over the padded length the kernels compute; prediction heads
  as the model reports them (an MLM head only at its masked fraction of positions).  Embedding
  lookups, norms, softmax and activations are not counted.  The model supplies the per-token
  counts (``Model.flops_per_token`` and its encoder/decoder split); this module only multiplies.
"""

from dataclasses import dataclass
from typing import Tuple

import torch


@dataclass(frozen=True)
class BatchFlops:
    """Training FLOPs of a batch, linear in its lengths: each source token costs
    ``src_base + src_per_len x S`` and each target token ``tgt_base + tgt_per_len x T +
    tgt_per_src_len x S`` (S, T: the padded source and target lengths).  Built once from the
    model (``of_model``), before ZeRO-3 partitions it."""

    src_base: float
    src_per_len: float
    tgt_base: float = 0.0
    tgt_per_len: float = 0.0
    tgt_per_src_len: float = 0.0

    @classmethod
    def of_model(cls, model, predicted_fraction: float = 0.15) -> "BatchFlops":
        split = getattr(model, "decoder_flops_per_token", None)
        if getattr(model, "decoder", None) is None or split is None:
            base = model.flops_per_token(0, predicted_fraction)
            return cls(base, model.flops_per_token(1, predicted_fraction) - base)
        src = model.encoder_flops_per_token(0, predicted_fraction)
        tgt = split(0, 0)
        return cls(src, model.encoder_flops_per_token(1, predicted_fraction) - src,
                   tgt, split(1, 0) - tgt, split(0, 1) - tgt)

    def __call__(self, src_tokens, src_len: int, tgt_tokens=0, tgt_len: int = 0):
        """FLOPs of a batch with these real-token counts (numbers or 0-dim tensors: the result is
        of the same kind, so counting a batch converts no tensor to a number)."""
        return (_wide(src_tokens) * (self.src_base + self.src_per_len * src_len)
                + _wide(tgt_tokens) * (self.tgt_base + self.tgt_per_len * tgt_len + self.tgt_per_src_len * src_len))


def _wide(count):
    return count.to(torch.float64) if torch.is_tensor(count) else count


def batch_tokens(batch: dict) -> Tuple[object, object]:
    """(real source tokens, real target tokens) of a collated batch, taking its ``tokens`` field
    out.  Computed on the host batch before it moves to the device, as 0-dim CPU tensors."""
    src_tokens = batch.pop("tokens")
    tgt_seg = batch.get("tgt_seg")
    tgt_tokens = (tgt_seg > 0).sum() if torch.is_tensor(tgt_seg) else 0
    return src_tokens, tgt_tokens

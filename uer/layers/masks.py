"""Attention masks for ``scaled_dot_product_attention``.

An ``AttentionMask`` is built once per forward pass and shared by every layer.  It prefers the
cheapest form SDPA understands: no mask at all, ``is_causal=True``, or a boolean mask where
True means "may attend".  Whether a batch has padding at all decides between those forms; the
caller passes the collator's ``HostLengths`` so that the choice costs no device-to-host sync, and
without them it is read back from ``seg`` (uer.layers.host_lengths).
"""

from dataclasses import dataclass
from typing import Optional

import torch

from uer.layers.host_lengths import HostLengths, has_padding as padding_in


@dataclass
class AttentionMask:
    attn_mask: Optional[torch.Tensor]  # bool (B, 1, Lq, Lk) or None
    is_causal: bool = False


def build_attention_mask(kind: str, seg: torch.Tensor, documents: Optional[torch.Tensor] = None,
                         lengths: Optional[HostLengths] = None) -> AttentionMask:
    """``seg``: (B, L) segment ids with 0 at padding.  ``kind``: fully_visible | causal |
    causal_with_prefix (segment 1 is the prefix, visible to every position).  ``documents`` (B, L):
    the document each token belongs to (sequences packed from several documents, llm_pretrain
    --document_mask); a key of another document is never visible.  This needs a dense mask, so SDPA
    cannot take its flash (is_causal) path.  ``lengths``: seg's real-token counts on the host (no sync
    to find out whether there is padding); None: read back from seg."""
    if documents is not None:
        return _within_documents(kind, seg, documents, lengths)
    keep = seg > 0                                      # (B, L) real tokens
    length = seg.size(1)
    if kind == "fully_visible":
        if not padding_in(lengths, seg):
            return AttentionMask(None)
        return AttentionMask(keep[:, None, None, :])
    causal = torch.ones(length, length, dtype=torch.bool, device=seg.device).tril()
    if kind == "causal":
        if not padding_in(lengths, seg):
            return AttentionMask(None, is_causal=True)
        mask = causal[None, None] & keep[:, None, None, :]
    elif kind == "causal_with_prefix":
        prefix = (seg == 1)[:, None, None, :]           # keys in the prefix are visible to all
        mask = (causal[None, None] | prefix) & keep[:, None, None, :]
    else:
        raise ValueError(f"unknown mask kind {kind}")
    # A padding query row may have no visible key (e.g. a left-padded causal row); let it see itself
    # so softmax never divides by zero.  Its output is ignored downstream.
    eye = torch.eye(length, dtype=torch.bool, device=seg.device)[None, None]
    return AttentionMask(mask | eye)


def _within_documents(kind: str, seg: torch.Tensor, documents: torch.Tensor,
                      lengths: Optional[HostLengths]) -> AttentionMask:
    """``kind``'s mask, restricted to keys of the query's own document."""
    full = build_attention_mask(kind, seg, lengths=lengths)
    length = seg.size(1)
    if full.attn_mask is not None:
        mask = full.attn_mask
    else:                                               # no padding: None or is_causal
        mask = torch.ones(length, length, dtype=torch.bool, device=seg.device)
        mask = (mask.tril() if full.is_causal else mask)[None, None]
    same = documents[:, None, :, None] == documents[:, None, None, :]      # (B, 1, L, L)
    eye = torch.eye(length, dtype=torch.bool, device=seg.device)[None, None]
    return AttentionMask((mask & same) | eye)

"""Unpadding (MosaicBERT / ModernBERT): a bidirectional encoder runs on the real tokens of a batch only.

The padded batch (B, L, H) becomes one stream (T, H) of its T real tokens (row-major: sequence 0's
tokens, then sequence 1's ...; ``cu_seqlens`` (B + 1,) their boundaries, as flash-attn takes them).
Norms, residuals, dropout, the q/k/v/output projections and the feed-forward — everything that works
per token, nearly all the FLOPs of a layer — run on the stream, so padding costs nothing there.
Attention alone needs sequences: with flash-attn on CUDA (fp16/bf16) ``flash_attn_varlen_func`` takes
the stream as it is; otherwise the projected heads are laid out on a (B, h, Lmax, d) grid, Lmax the
longest sequence of this batch (not the configured length), for ``scaled_dot_product_attention``
with a key-padding mask, and gathered back.  The grid places each sequence's tokens at 0 .. n-1, so
rotary and ALiBi see every token at its own position in its own sequence, as in the padded model;
absolute positions were added by the embedding before unpadding.  Sequences are right-padded (what
every collator writes): the tokens of a row are its seg > 0 positions, in order.

Finding T and Lmax needs the lengths on the host: the collator's ``HostLengths`` (no sync), else
one read of seg's lengths per forward; every layer reuses them.  Shapes
vary from batch to batch, so CUDA graphs / static-shape compilation do not apply to this path.
"""

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from uer.layers.attention import (
    NATIVE_GQA,
    MultiHeadAttention,
    Positions,
    PositionScheme,
    repeat_kv,
)
from uer.layers.dropout import scaled_dot_product_attention
from uer.layers.host_lengths import HostLengths

try:       # optional: the varlen kernel on CUDA; never required
    from flash_attn import flash_attn_varlen_func
except ImportError:       # pragma: no cover - depends on the machine
    flash_attn_varlen_func = None


@dataclass
class Unpadded:
    """Where the stream's tokens come from, shared by every layer of one forward."""
    batch: int
    length: int                   # L of the padded input
    max_len: int                  # Lmax: the longest sequence of the batch
    indices: torch.Tensor         # (T,) each token's flat index in the (B * L) input
    grid_indices: torch.Tensor    # (T,) its flat index in the (B * Lmax) attention grid
    keep: torch.Tensor            # (B, Lmax) bool: grid slots that hold a token (key-padding mask)
    cu_seqlens: torch.Tensor      # (B + 1,) int32 sequence boundaries in the stream
    positions: Positions          # grid positions 0 .. Lmax - 1 for the position scheme
    stream_positions: torch.Tensor   # (1, T) each token's position in its sequence (the varlen path)

    @property
    def tokens(self) -> int:
        return self.indices.numel()


def unpad(x: torch.Tensor, seg: torch.Tensor, host: Optional[HostLengths] = None) -> "tuple[torch.Tensor, Unpadded]":
    """x (B, L, H), seg (B, L) with 0 at padding -> the stream (T, H) and its ``Unpadded``.
    ``host``: seg's lengths known on the host (the collator's); None: read back (one sync)."""
    batch, length = seg.shape
    real = seg > 0
    lengths = real.sum(dim=1)                                   # (B,)
    host = host.for_seg(seg) if host is not None else None
    on_host = list(host.lengths) if host is not None else lengths.tolist()    # T and Lmax
    max_len = max(on_host + [1])
    indices = torch.nonzero_static(real.flatten(), size=sum(on_host)).squeeze(1)   # no second read
    slot = (real.cumsum(dim=1) - 1).flatten()[indices]          # rank of each token in its row
    grid_indices = indices // length * max_len + slot
    keep = torch.arange(max_len, device=seg.device)[None, :] < lengths[:, None]
    cu_seqlens = F.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)
    positions = torch.arange(max_len, device=seg.device)[None]
    info = Unpadded(batch, length, max_len, indices, grid_indices, keep, cu_seqlens, Positions(positions, positions),
                    slot[None])
    return x.reshape(batch * length, -1).index_select(0, indices), info


def repad(stream: torch.Tensor, info: Unpadded) -> torch.Tensor:
    """(T, H) -> (B, L, H) with zeros at the padding positions (nothing downstream reads them)."""
    out = stream.new_zeros(info.batch * info.length, stream.size(-1))
    return out.index_copy(0, info.indices, stream).view(info.batch, info.length, -1)


def _to_grid(heads: torch.Tensor, info: Unpadded) -> torch.Tensor:
    """(T, h, d) -> (B, h, Lmax, d), zeros in the empty slots."""
    grid = heads.new_zeros(info.batch * info.max_len, heads.size(1), heads.size(2))
    grid = grid.index_copy(0, info.grid_indices, heads)
    return grid.view(info.batch, info.max_len, heads.size(1), heads.size(2)).transpose(1, 2)


def _use_flash(q: torch.Tensor, attention: MultiHeadAttention, position: Optional[PositionScheme]) -> bool:
    from uer.layers.alibi import AlibiPosition
    from uer.layers.rotary import RotaryPosition
    supported = position is None or isinstance(position, (AlibiPosition, RotaryPosition))
    return (flash_attn_varlen_func is not None and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16)
            and supported and attention.scale is None)


def unpadded_attention(attention: MultiHeadAttention, x: torch.Tensor, info: Unpadded,
                       position: Optional[PositionScheme] = None) -> torch.Tensor:
    """Bidirectional self-attention of ``attention``'s weights over the stream x (T, H) -> (T, H),
    each token attending to the tokens of its own sequence: equal to ``attention(padded, mask)`` on
    the real tokens."""
    heads, kv_heads, d = attention.heads_num, attention.kv_heads_num, attention.head_size
    q = attention.query(x).view(-1, heads, d)
    k = attention.key(x).view(-1, kv_heads, d)
    v = attention.value(x).view(-1, kv_heads, d)
    dropout = attention.dropout if attention.training else 0.0
    if _use_flash(q, attention, position):
        return attention.output(_flash(q, k, v, info, position, dropout).reshape(x.size(0), -1))
    q, k, v = _to_grid(q, info), _to_grid(k, info), _to_grid(v, info)      # (B, h, Lmax, d)
    attn_mask = info.keep[:, None, None, :]
    extra = {} if attention.scale is None else {"scale": attention.scale}
    if position is not None:
        q, k = position.rotate(q, k, info.positions.query)
        bias = position.bias(info.max_len, info.max_len, x.device, info.positions)
        scale = position.softmax_scale(d)
        if scale is not None:
            extra["scale"] = scale
        if bias is not None:        # one float mask: the bias, -inf at the empty slots
            attn_mask = bias.masked_fill(~attn_mask, float("-inf")).to(q.dtype)
    if kv_heads != heads:
        if NATIVE_GQA and attn_mask is None:
            extra["enable_gqa"] = True
        else:
            k, v = repeat_kv(k, heads), repeat_kv(v, heads)
    y = scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout, **extra)
    y = y.transpose(1, 2).reshape(info.batch * info.max_len, heads * d).index_select(0, info.grid_indices)
    return attention.output(y)


def _flash(q, k, v, info: Unpadded, position, dropout: float):
    """flash-attn's varlen kernel on the stream: rotary at each token's own position, ALiBi as its
    slopes (flash-attn's bidirectional ALiBi is -slope * |i - j|, ours)."""
    from uer.layers.alibi import AlibiPosition
    alibi = None
    if isinstance(position, AlibiPosition):
        alibi = position.slopes.to(q.device)
    elif position is not None:          # rotary: (1, h, T, d), each token at its own position
        qr, kr = position.rotate(q.transpose(0, 1)[None], k.transpose(0, 1)[None], info.stream_positions)
        q, k = qr[0].transpose(0, 1), kr[0].transpose(0, 1)
    return flash_attn_varlen_func(q.contiguous(), k.contiguous(), v, info.cu_seqlens, info.cu_seqlens,
                                  info.max_len, info.max_len, dropout_p=dropout, alibi_slopes=alibi)

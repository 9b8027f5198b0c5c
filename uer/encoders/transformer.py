"""The transformer encoder: post-LN (BERT) or pre-LN (GPT-2, LLaMA), dense or gated FFN (SwiGLU),
optional ALBERT factorised embeddings and cross-layer parameter sharing, grouped-query attention, and one
attention-level position scheme shared by the layers (T5 buckets, rotary, ALiBi)."""

from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from uer.config import ModelConfig
from uer.errors import ConfigError
from uer.layers.alibi import build_alibi_position
from uer.layers.attention import (
    AttentionCache,
    MultiHeadAttention,
    Positions,
    PositionScheme,
)
from uer.layers.dropout import Dropout
from uer.layers.feed_forward import build_feed_forward
from uer.layers.host_lengths import HostLengths
from uer.layers.local_attention import build_local_window, is_local_layer
from uer.layers.masks import AttentionMask, build_attention_mask
from uer.layers.norms import build_norm
from uer.layers.rotary import build_rotary_position
from uer.layers.t5_position import build_relative_position
from uer.layers.unpad import Unpadded, repad, unpad, unpadded_attention
from uer.partitioned import full_numel, full_shape
from uer.registry import ENCODERS


class TransformerLayer(nn.Module):
    def __init__(self, config: ModelConfig, index: int = 0):
        """``index``: the layer's depth (ModernBERT's layer 0 has no pre-attention norm: the embedding's
        norm serves, ``first_layer_attention_norm`` false)."""
        super().__init__()
        bias = not config.remove_transformer_bias
        self.pre_norm = config.layernorm_positioning == "pre"
        self.attention = MultiHeadAttention(config.hidden_size, config.heads_num, config.head_size,
                                            config.attention_dropout_prob, bias=bias,
                                            scale=1.0 if config.remove_attention_scale else None,
                                            kv_heads_num=config.kv_heads,
                                            qkv_bias=bias or config.attention_qkv_bias)
        self.feed_forward = build_feed_forward(config.feed_forward, config.hidden_size,
                                               config.feedforward_size, config.hidden_act, bias=bias)
        norm_bias = config.layernorm_bias
        self.norm_1 = nn.Identity() if index == 0 and not config.first_layer_attention_norm else \
            build_norm(config.layernorm, config.hidden_size, config.layernorm_eps, norm_bias)
        self.norm_2 = build_norm(config.layernorm, config.hidden_size, config.layernorm_eps, norm_bias)
        self.dropout_1 = Dropout(config.dropout)
        self.dropout_2 = Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask, position: Optional[PositionScheme] = None,
                cache: Optional[AttentionCache] = None, positions: Optional[Positions] = None) -> torch.Tensor:
        """x (B, L, H) with an AttentionMask, or an unpadded stream (T, H) with its ``Unpadded`` as
        ``mask``: everything but attention works per token, so only attention tells them apart."""
        if self.pre_norm:
            x = x + self.dropout_1(self._attend(self.norm_1(x), mask, position, cache, positions))
            return x + self.dropout_2(self.feed_forward(self.norm_2(x)))
        x = self.norm_1(x + self.dropout_1(self._attend(x, mask, position, cache, positions)))
        return self.norm_2(x + self.dropout_2(self.feed_forward(x)))

    def _attend(self, x, mask, position, cache, positions) -> torch.Tensor:
        if isinstance(mask, Unpadded):
            return unpadded_attention(self.attention, x, mask, position)
        return self.attention(x, mask, position, cache=cache, positions=positions)


@dataclass
class EncoderCache:
    """Incremental decoding through a causal encoder (decoder-only LMs): one self-attention cache per
    layer use, and which cached positions are real tokens (False: left padding of a batched prompt)."""
    layers: List[AttentionCache]
    keep: Optional[torch.Tensor] = None    # (B, length) bool
    positions: Optional[torch.Tensor] = None   # (B, length) the cached tokens' positions (position schemes)
    # Whether a cached position is padding, known on the host (every step came with HostLengths);
    # None once a step came without them (then the mask reads it back from the device).
    has_padding: Optional[bool] = False

    @property
    def length(self) -> int:
        return 0 if self.keep is None else self.keep.size(1)

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` (beam search): every cached tensor is re-indexed on dim 0."""
        for cache in self.layers:
            if cache.k is not None:
                cache.k, cache.v = cache.k.index_select(0, index), cache.v.index_select(0, index)
        if self.keep is not None:
            self.keep = self.keep.index_select(0, index)
        if self.positions is not None:
            self.positions = self.positions.index_select(0, index)


def cached_causal_mask(keep_new: torch.Tensor, keep_past: Optional[torch.Tensor],
                       has_padding: Optional[bool] = None) -> AttentionMask:
    """Causal self-attention of ``new`` tokens after ``past`` cached ones, padding keys hidden; equal
    to the last rows of ``build_attention_mask("causal", seg)`` over the whole sequence.
    ``has_padding``: whether any past or new position is padding, known on the host; None: read back."""
    new, past = keep_new.size(1), 0 if keep_past is None else keep_past.size(1)
    keep = keep_new if keep_past is None else torch.cat([keep_past, keep_new], dim=1)
    if has_padding is None:
        has_padding = not bool(keep.all())
    if not has_padding:
        if new == 1:
            return AttentionMask(None)
        if past == 0:
            return AttentionMask(None, is_causal=True)
    device = keep.device
    visible = torch.ones(new, past + new, dtype=torch.bool, device=device).tril(past)
    # A padding query sees itself (as in build_attention_mask), so softmax never divides by zero.
    itself = torch.arange(past + new, device=device)[None, :] == (past + torch.arange(new, device=device))[:, None]
    return AttentionMask((visible[None, None] & keep[:, None, None, :]) | itself[None, None])


@ENCODERS.register("transformer")
class TransformerEncoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.mask_kind = config.mask
        self.unpad = config.unpad    # validate() allows it for bidirectional stacks without T5 buckets
        self.layers_num = config.layers_num
        self.parameter_sharing = config.parameter_sharing
        self.activation_checkpointing = False   # switched on by the trainer, not part of the model
        self.linear = nn.Linear(config.emb_size, config.hidden_size) \
            if config.factorized_embedding_parameterization else None
        count = 1 if config.parameter_sharing else config.layers_num
        self.layers = nn.ModuleList(TransformerLayer(config, i) for i in range(count))
        self.final_norm = build_norm(config.layernorm, config.hidden_size, config.layernorm_eps,
                                     config.layernorm_bias) if config.layernorm_positioning == "pre" else None
        # Attention-level positions, shared by all layers (T5 buckets: bidirectional in the encoder);
        # the config allows at most one scheme.
        self.position: Optional[PositionScheme] = build_relative_position(config, bidirectional=True) \
            or build_rotary_position(config) or build_alibi_position(config)
        # Sliding-window layers (ModernBERT): the band around the stack's scheme, or around their own rotary
        # base; which layers are local is fixed by the config.
        self.local_position = build_local_window(config, self.position)
        self.local_layers = [is_local_layer(config, i) for i in range(config.layers_num)]

    def new_cache(self) -> EncoderCache:
        """A cache for incremental (causal) decoding; only a causal encoder can extend a sequence."""
        if self.mask_kind != "causal":
            raise ConfigError(f"incremental decoding needs a causal encoder (\"mask\": \"causal\", a decoder-only "
                              f"LM such as GPT-2); this model's encoder has mask '{self.mask_kind}'")
        return EncoderCache([AttentionCache() for _ in range(self.layers_num)])

    def _positions(self, positions: Optional[torch.Tensor], batch: int, length: int, device,
                   cache: Optional[EncoderCache]) -> Optional[Positions]:
        """The position scheme's query/key positions; the cache remembers the keys' (per row)."""
        if self.position is None and self.local_position is None:
            return None
        past = cache.length if cache is not None else 0
        if positions is None:
            positions = torch.arange(past, past + length, device=device)[None]
        if cache is None:
            return Positions(positions, positions)
        new = positions.expand(batch, length)
        cache.positions = new if cache.positions is None else torch.cat([cache.positions, new], dim=1)
        return Positions(positions, cache.positions)

    def forward(self, emb: torch.Tensor, seg: torch.Tensor, cache: Optional[EncoderCache] = None,
                positions: Optional[torch.Tensor] = None, documents: Optional[torch.Tensor] = None,
                lengths: Optional[HostLengths] = None) -> torch.Tensor:
        """emb: (B, L, emb_size); seg: (B, L) with 0 at padding -> hidden (B, L, hidden_size).
        ``documents`` (B, L): the document of each token of a packed sequence; attention stays within it.
        ``cache`` (``new_cache()``): the L tokens follow ``cache.length`` cached ones; updated in place.
        ``positions`` (B, L): each token's position for rotary / ALiBi (left-padded prompts count real
        tokens only); None: 0.. L - 1 after the cached tokens.  ``lengths``: seg's real-token counts
        on the host (the collator's), so the mask / unpadding need no device-to-host sync."""
        if self.unpad and cache is None:
            if documents is not None:
                raise ConfigError("\"unpad\": true cannot attend within packed documents (doc_ids); "
                                  "set \"unpad\": false")
            return self._forward_unpadded(emb, seg, lengths)
        token_positions = self._positions(positions, emb.size(0), emb.size(1), emb.device, cache)
        if cache is None:
            mask = build_attention_mask(self.mask_kind, seg, documents, lengths)
        else:
            known = lengths.for_seg(seg) if lengths is not None else None
            if known is None or cache.has_padding is None:
                cache.has_padding = None
            else:
                cache.has_padding = cache.has_padding or known.has_padding
            mask = cached_causal_mask(seg > 0, cache.keep, cache.has_padding)
            cache.keep = seg > 0 if cache.keep is None else torch.cat([cache.keep, seg > 0], dim=1)
        x = self.linear(emb) if self.linear is not None else emb
        local_mask = self._local_mask(mask)
        for i in range(self.layers_num):
            layer = self.layers[0 if self.parameter_sharing else i]
            position, layer_mask = (self.local_position, local_mask) if self.local_layers[i] else (self.position, mask)
            if self.activation_checkpointing and self.training and cache is None:
                x = checkpoint(layer, x, layer_mask, position, None, token_positions, use_reentrant=False)
            else:
                x = layer(x, layer_mask, position, cache.layers[i] if cache is not None else None, token_positions)
        return self.final_norm(x) if self.final_norm is not None else x

    def _forward_unpadded(self, emb: torch.Tensor, seg: torch.Tensor,
                          lengths: Optional[HostLengths] = None) -> torch.Tensor:
        """The layers on the real tokens only (uer.layers.unpad); zeros at padding in the output."""
        x, info = unpad(emb, seg, lengths)
        x = self.linear(x) if self.linear is not None else x
        for i in range(self.layers_num):
            layer = self.layers[0 if self.parameter_sharing else i]
            position = self.local_position if self.local_layers[i] else self.position
            if self.activation_checkpointing and self.training:
                x = checkpoint(layer, x, info, position, None, None, use_reentrant=False)
            else:
                x = layer(x, info, position)
        x = self.final_norm(x) if self.final_norm is not None else x
        return repad(x, info)

    def _local_mask(self, mask: AttentionMask) -> AttentionMask:
        """The sliding-window layers' mask: the stack's, where a padding query also sees itself, since the
        window can leave it no visible key (softmax over nothing is NaN, and NaN values leak into every
        query through their zero weights).  Real tokens attend exactly as under the stack's mask."""
        if self.local_position is None or mask.attn_mask is None:
            return mask
        q_len, k_len = mask.attn_mask.shape[-2:]        # the queries are the last q_len of k_len positions
        device = mask.attn_mask.device
        itself = torch.arange(k_len, device=device)[None, :] == (k_len - q_len + torch.arange(q_len, device=device))[:, None]
        return AttentionMask(mask.attn_mask | itself, mask.is_causal)

    def matmul_params_per_token(self) -> int:
        """Parameters used in matrix products per token per forward (shared layers count each use)."""
        per_layer = sum(full_numel(p) for p in self.layers[0].parameters() if len(full_shape(p)) == 2)
        extra = full_numel(self.linear.weight) if self.linear is not None else 0
        return per_layer * self.layers_num + extra

"""The transformer decoder: causal self-attention, cross-attention over the encoder output, feed-forward;
post-LN (Transformer, BART) or pre-LN with a final norm (T5, PEGASUS); optional T5 relative-position
buckets (causal, one table shared by the layers, none on cross-attention).

Incremental decoding: ``new_cache()`` gives a DecoderCache; each call with it feeds the next tokens
only, the self-attention keys/values grow by those tokens, the cross-attention ones are computed on
the first call and reused.  The result equals the full (uncached) pass position for position.
"""

from dataclasses import dataclass, field
from typing import List, Optional

import torch
from torch import nn

from uer.config import ModelConfig
from uer.layers.attention import AttentionCache, MultiHeadAttention, PositionScheme
from uer.layers.dropout import Dropout
from uer.layers.feed_forward import build_feed_forward
from uer.layers.host_lengths import HostLengths, has_padding
from uer.layers.masks import AttentionMask, build_attention_mask
from uer.layers.norms import build_norm
from uer.layers.t5_position import build_relative_position
from uer.partitioned import full_numel, full_shape
from uer.registry import DECODERS


@dataclass
class LayerCache:
    self_attention: AttentionCache = field(default_factory=AttentionCache)
    cross_attention: AttentionCache = field(default_factory=AttentionCache)


@dataclass
class DecoderCache:
    """Per-layer key/value caches and the number of target positions already decoded."""
    layers: List[LayerCache]
    length: int = 0

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` (beam search): every cached tensor is re-indexed on dim 0."""
        for layer in self.layers:
            for cache in (layer.self_attention, layer.cross_attention):
                if cache.k is not None:
                    cache.k, cache.v = cache.k.index_select(0, index), cache.v.index_select(0, index)


def decoder_sizes(config: ModelConfig):
    """(layers, heads, feed-forward width) of the decoder: its own keys, 0 meaning the encoder's."""
    return (config.decoder_layers_num or config.layers_num, config.decoder_heads_num or config.heads_num,
            config.decoder_feedforward_size or config.feedforward_size)


class TransformerDecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig, heads_num: int, feedforward_size: int):
        super().__init__()
        bias = not config.remove_transformer_bias
        head_size = config.attention_head_size or config.hidden_size // heads_num
        scale = 1.0 if config.remove_attention_scale else None
        self.pre_norm = config.layernorm_positioning == "pre"

        def attention():
            return MultiHeadAttention(config.hidden_size, heads_num, head_size, config.attention_dropout_prob,
                                      bias=bias, scale=scale)
        self.self_attention = attention()
        self.cross_attention = attention()
        self.feed_forward = build_feed_forward(config.feed_forward, config.hidden_size, feedforward_size,
                                               config.hidden_act, bias=bias)
        self.norm_1, self.norm_2, self.norm_3 = (build_norm(config.layernorm, config.hidden_size,
                                                            config.layernorm_eps) for _ in range(3))
        self.dropout_1, self.dropout_2, self.dropout_3 = (Dropout(config.dropout) for _ in range(3))

    def forward(self, x: torch.Tensor, self_mask: AttentionMask, memory: torch.Tensor,
                memory_mask: AttentionMask, position: Optional[PositionScheme] = None,
                cache: Optional[LayerCache] = None) -> torch.Tensor:
        self_cache = cache.self_attention if cache is not None else None
        cross_cache = cache.cross_attention if cache is not None else None
        if self.pre_norm:
            x = x + self.dropout_1(self.self_attention(self.norm_1(x), self_mask, position, cache=self_cache))
            x = x + self.dropout_2(self.cross_attention(self.norm_2(x), memory_mask, kv=memory, cache=cross_cache))
            return x + self.dropout_3(self.feed_forward(self.norm_3(x)))
        x = self.norm_1(x + self.dropout_1(self.self_attention(x, self_mask, position, cache=self_cache)))
        x = self.norm_2(x + self.dropout_2(self.cross_attention(x, memory_mask, kv=memory, cache=cross_cache)))
        return self.norm_3(x + self.dropout_3(self.feed_forward(x)))


def memory_mask(src_seg: torch.Tensor, lengths: Optional[HostLengths] = None) -> AttentionMask:
    """Cross-attention sees every real source token (seg > 0), from every target position.
    ``lengths``: src_seg's real-token counts on the host (no sync); None: read back."""
    if not has_padding(lengths, src_seg):
        return AttentionMask(None)
    return AttentionMask((src_seg > 0)[:, None, None, :])


def step_mask(new: int, past: int, device) -> AttentionMask:
    """Self-attention of ``new`` tokens after ``past`` cached ones: causal within the new block."""
    if new == 1:
        return AttentionMask(None)
    visible = torch.ones(new, past + new, dtype=torch.bool, device=device).tril(past)
    return AttentionMask(visible[None, None])


@DECODERS.register("transformer")
class TransformerDecoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        layers_num, heads_num, feedforward_size = decoder_sizes(config)
        self.layers = nn.ModuleList(TransformerDecoderLayer(config, heads_num, feedforward_size)
                                    for _ in range(layers_num))
        self.final_norm = build_norm(config.layernorm, config.hidden_size, config.layernorm_eps) \
            if config.layernorm_positioning == "pre" else None
        # T5: causal buckets, one table for every decoder layer's self-attention.
        self.position: Optional[PositionScheme] = build_relative_position(config, bidirectional=False,
                                                                          heads_num=heads_num)
        self.activation_checkpointing = False

    def new_cache(self) -> DecoderCache:
        return DecoderCache([LayerCache() for _ in self.layers])

    def forward(self, emb: torch.Tensor, tgt_seg: Optional[torch.Tensor], memory: torch.Tensor,
                src_seg: torch.Tensor, cache: Optional[DecoderCache] = None,
                src_lengths: Optional[HostLengths] = None, tgt_lengths: Optional[HostLengths] = None) -> torch.Tensor:
        """emb (B, T, H): the target embedding; tgt_seg (B, T), 0 at padding (None: no padding);
        memory (B, S, H): the encoder output; src_seg (B, S).  With ``cache`` the T tokens follow
        ``cache.length`` already decoded ones (no target padding) -> (B, T, H).  ``src_lengths`` /
        ``tgt_lengths``: src_seg's / tgt_seg's ``HostLengths`` (the collator's): the masks' form is
        then chosen without a device-to-host sync."""
        new = emb.size(1)
        if cache is None:
            if tgt_seg is None:         # no target padding: known without looking
                self_mask = AttentionMask(None, is_causal=True)
            else:
                self_mask = build_attention_mask("causal", tgt_seg, lengths=tgt_lengths)
        else:
            if tgt_seg is not None and has_padding(tgt_lengths, tgt_seg):
                raise ValueError("cached decoding takes unpadded target steps; decode padded targets "
                                 "without a cache")
            self_mask = step_mask(new, cache.length, emb.device)
        cross_mask = memory_mask(src_seg, src_lengths)
        x = emb
        for i, layer in enumerate(self.layers):
            layer_cache = cache.layers[i] if cache is not None else None
            if self.activation_checkpointing and self.training and cache is None:
                from torch.utils.checkpoint import checkpoint
                x = checkpoint(layer, x, self_mask, memory, cross_mask, self.position, use_reentrant=False)
            else:
                x = layer(x, self_mask, memory, cross_mask, self.position, layer_cache)
        if cache is not None:
            cache.length += new
        return self.final_norm(x) if self.final_norm is not None else x

    def matmul_params_per_token(self) -> int:
        per_layer = sum(full_numel(p) for p in self.layers[0].parameters() if len(full_shape(p)) == 2)
        return per_layer * len(self.layers)

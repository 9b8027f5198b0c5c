"""DeBERTa's enhanced mask decoder (EMD; He et al. 2021, section 3.2): absolute positions enter
just before the masked-LM softmax.

What runs (as in microsoft/DeBERTa ``EnhancedMaskDecoder.emd_context_layer`` with
``position_biased_input`` false): let H be the input of the encoder's last layer (the output of the
second-to-last layer) and P the absolute-position table.  The last layer is re-run ``emd_layers_num``
times (2 in DeBERTa) with its own weights and the shared disentangled relative-position bias; the
first pass's query input is I = H + P, each later pass's query input is the previous pass's
output, and keys/values are always H.  The attention residual adds the query input (the layer's
``query_states``), then the layer's feed-forward block as usual.  The mlm head reads the last
pass's output in place of the encoder's final hidden states.

Queries are computed only at the selected positions (B, P) — the mlm head scores nothing else —
against keys/values over the whole sequence (B, L); the relative-position bias is gathered for those
query rows.  Key/value projections and the position-to-content term depend only on H, so they are
computed once for all passes.  Differences from the reference: relative-table dropout is drawn once
per decoder call instead of once per pass (identical in eval), and P is a table of ``hidden_size``
columns (DeBERTa's position table has the embedding width, equal unless factorised).
"""

from typing import List

import torch
from torch import nn

from uer.config import ModelConfig
from uer.layers.dropout import scaled_dot_product_attention
from uer.layers.masks import AttentionMask


def _key_mask_rows(mask: AttentionMask, positions: torch.Tensor, length: int):
    """The boolean key mask for the selected query rows, (B, 1, P, L) or (B, 1, 1, L), or None."""
    if mask.is_causal:
        keys = torch.arange(length, device=positions.device)
        return keys[None, None, None, :] <= positions[:, None, :, None]
    allowed = mask.attn_mask
    if allowed is None or allowed.size(2) == 1:
        return allowed
    rows = positions[:, None, :, None].expand(-1, 1, -1, length)
    return allowed.expand(positions.size(0), 1, length, length).gather(2, rows)


class EnhancedMaskDecoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.layers_num = config.emd_layers_num
        self.max_seq_length = config.max_seq_length
        self.position = nn.Embedding(config.max_seq_length, config.hidden_size)   # absolute positions
        self._encoder: List[nn.Module] = []   # a list: the encoder's weights are not registered twice

    def bind(self, encoder: nn.Module) -> None:
        """Use ``encoder``'s last layer and position scheme (a DeBERTa encoder)."""
        if not hasattr(encoder, "keep_last_layer_input"):
            raise TypeError("the enhanced mask decoder needs a \"deberta\" encoder")
        encoder.keep_last_layer_input()
        self._encoder = [encoder]

    def _pass(self, layer, query: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask, terms,
              position) -> torch.Tensor:
        attention = layer.attention
        batch, count, _ = query.shape
        attn_in = layer.norm_1(query) if layer.pre_norm else query
        q = attention.query(attn_in).view(batch, count, attention.heads_num, attention.head_size).transpose(1, 2)
        bias = position.selected_query_bias(q, terms)                        # (B, h, P, L)
        if key_mask is not None:
            bias = bias.masked_fill(~key_mask, float("-inf"))
        y = scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                         dropout_p=attention.dropout if self.training else 0.0,
                                         scale=position.softmax_scale(attention.head_size))
        y = attention.output(y.transpose(1, 2).reshape(batch, count, -1))
        if layer.pre_norm:
            x = query + layer.dropout_1(y)
            return x + layer.dropout_2(layer.feed_forward(layer.norm_2(x)))
        x = layer.norm_1(query + layer.dropout_1(y))
        return layer.norm_2(x + layer.dropout_2(layer.feed_forward(x)))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """positions (B, P) -> decoded states (B, P, hidden) at those positions, for the encoder's
        latest forward."""
        if not self._encoder:
            raise RuntimeError("EnhancedMaskDecoder.bind(encoder) was not called")
        encoder = self._encoder[0]
        hidden, mask = encoder.take_last_layer_input()                        # (B, L, H)
        layer = encoder.layers[-1]
        attention, position = layer.attention, encoder.position
        batch, length, _ = hidden.shape
        if length > self.max_seq_length:
            raise ValueError(f"sequence of {length} tokens exceeds max_seq_length {self.max_seq_length}")
        context = layer.norm_1(hidden) if layer.pre_norm else hidden
        k = attention.key(context).view(batch, length, attention.heads_num, attention.head_size).transpose(1, 2)
        v = attention.value(context).view(batch, length, attention.heads_num, attention.head_size).transpose(1, 2)
        terms = position.selected_query_terms(k, attention, positions)
        key_mask = _key_mask_rows(mask, positions, length)
        at = positions.unsqueeze(-1).expand(-1, -1, hidden.size(-1))
        query = hidden.gather(1, at) + self.position(positions)               # I = H + P
        for _ in range(self.layers_num):
            query = self._pass(layer, query, k, v, key_mask, terms, position)
        return encoder.final_norm(query) if encoder.final_norm is not None else query

    def flops_per_token(self, config: ModelConfig, predicted_fraction: float) -> float:
        """Training FLOPs per input token: key/value projections once over every token, and per pass
        at the predicted positions the query/output projections, the FFN and attention over L keys
        (counted as in Model.flops_per_token, L taken as max_seq_length)."""
        h, f, inner = config.hidden_size, config.feedforward_size, config.heads_num * config.head_size
        per_query_pass = 2 * h * inner + 2 * h * f + 2 * inner * config.max_seq_length
        return 6.0 * (2 * h * inner + self.layers_num * per_query_pass * predicted_fraction)

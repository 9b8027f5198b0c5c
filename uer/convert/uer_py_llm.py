"""TencentPretrain's LLaMA-family options and UER-py's sinusoid positions, for uer/convert/uer_py.py.

Rotary positions.  TencentPretrain (tencentpretrain/utils/rope.py) rotates *interleaved* pairs: it views
each head's features as (d/2, 2) complex numbers, so feature pair i is (2i, 2i+1).  uer, like Hugging
Face, rotates halves: pair i is (i, i + d/2).  The same model therefore stores its q and k projection
rows in a different order per head: import re-orders them (``RotaryPairs.to_uer``), export restores
TencentPretrain's order.  q has ``heads_num`` heads, k the key/value heads (``local_kv_heads_num``):
TencentPretrain's own Hugging Face script (scripts/convert_llama_from_huggingface_to_tencentpretrain.py)
reshapes k by ``n_heads``, which only holds without grouped-query attention (for LLaMA-2-70B's 8 key
heads the reshape does not fit; it knows only the 7B-65B LLaMA-1 shapes).

TencentPretrain's ``alibi_position_embedding`` / ``layer_number_scale`` (its BLOOM configs): the options
are parsed, and its attention takes an ``alibi`` argument, but its transformer encoder never builds an
ALiBi bias nor passes a layer number (HEAD ed79843, and since the options appeared in 0ccdcf5), so a
model trained with them has no position information besides the causal mask, and its BLOOM configs
also drop BLOOM's embedding layer norm.  Import reproduces what that code computes (no position
scheme, noted); a uer ALiBi model is refused on export, since TencentPretrain would run it without.
"""

from typing import Any, Dict, List

import torch

from uer.config import ModelConfig
from uer.convert.transforms import Sizes, Transform
from uer.errors import CheckpointError, ConfigError

# Their position embedding names <-> ours: UER-py's text sinusoid table is its own layout (frequencies
# 10000^(-i/(d/2-1)), sin/cos interleaved, position p at row p + 2; uer/embeddings/position.py).
SINUSOID_THEIRS, SINUSOID_OURS = "sinusoidalpos", "sinusoidalpos_uer_py"


class RotaryPairs(Transform):
    """A q or k projection (weight (heads*d, in), or bias (heads*d,)) of a rotary model: TencentPretrain's
    interleaved pairs (2i, 2i+1) <-> our rotate-half pairs (i, i + d/2), head by head.  Both directions
    are pure row permutations, so a round trip is exact."""

    def __init__(self, heads: int, head_size: int, what: str):
        self.heads, self.head_size, self.what = heads, head_size, what
        self.name = f"rotary_pairs({what}: {heads} heads x {head_size})"

    def _check(self, t: torch.Tensor) -> None:
        if t.size(0) != self.heads * self.head_size:
            raise CheckpointError(f"{self.what} projection: expected {self.heads} heads x {self.head_size} = "
                                  f"{self.heads * self.head_size} rows, the tensor has {t.size(0)} (shape "
                                  f"{tuple(t.shape)}); the weights do not match the config's heads_num / "
                                  "local_kv_heads_num")

    def _reorder(self, t: torch.Tensor, interleaved_to_halves: bool) -> torch.Tensor:
        self._check(t)
        rest = tuple(t.shape[1:])
        half = self.head_size // 2
        if interleaved_to_halves:      # rows (h, i, pair) -> (h, pair, i): evens first, then odds
            return t.reshape(self.heads, half, 2, *rest).transpose(1, 2).reshape(t.shape).contiguous()
        return t.reshape(self.heads, 2, half, *rest).transpose(1, 2).reshape(t.shape).contiguous()

    def to_uer(self, tensors, sizes: Sizes, notes: List[str]):
        return [self._reorder(t, True) for t in tensors]

    def to_hf(self, tensors, sizes: Sizes, notes: List[str]):
        return [self._reorder(t, False) for t in tensors]


def import_options(out: Dict[str, Any], source: str, notes: List[str]) -> None:
    """Their resolved keys (``out``, UER-py defaults filled in) -> ours, in place: rotary and grouped-query
    attention (TencentPretrain), ALiBi as their code runs it, sinusoid positions (UER-py's table, word
    embeddings x sqrt(emb_size) whenever the source embedding has them, as their WordEmbedding does)."""
    if out.pop("alibi_position_embedding", False):
        notes.append("alibi_position_embedding: TencentPretrain parses it but its transformer encoder never "
                     "adds an ALiBi bias (nor uses layer_number_scale), so the model was trained and runs "
                     "without positions; imported so, with no position scheme")
    if out["layernorm"] == "rms" and out.get("decoder"):
        raise ConfigError(f"{source}, key 'layernorm': 'rms' with a decoder; TencentPretrain's decoder keeps its "
                          "LayerNorm for the final norm (only 't5' changes it), a mix uer cannot build")
    if out.get("rotary_position_embedding"):
        if out.get("decoder"):
            raise ConfigError(f"{source}, key 'rotary_position_embedding': rotary positions in an "
                              "encoder-decoder model are not converted (TencentPretrain applies them to its "
                              "encoder's self-attention only)")
        head = out["hidden_size"] // out["heads_num"]
        if out.get("attention_head_size") and out["attention_head_size"] != head:
            raise ConfigError(f"{source}, key 'attention_head_size': {out['attention_head_size']} with rotary "
                              f"positions; TencentPretrain builds its rotary table for hidden_size // heads_num "
                              f"= {head} features per head, so this model cannot have run there")
    kv = out.pop("local_kv_heads_num", 0) or 0
    if kv and kv != out["heads_num"]:
        out["kv_heads_num"] = kv
    sinusoid_src = SINUSOID_THEIRS in out["embedding"]
    for key in ("embedding", "tgt_embedding"):
        if key in out and SINUSOID_THEIRS in out[key]:
            out[key] = [SINUSOID_OURS if n == SINUSOID_THEIRS else n for n in out[key]]
    if sinusoid_src:
        out["scale_embedding"] = True


def export_checks(config: ModelConfig, source: str) -> Dict[str, Any]:
    """What a TencentPretrain config needs beyond UER-py's keys for our rotary / GQA options, or a refusal
    naming the key; returns the extra keys to write."""
    extra: Dict[str, Any] = {}
    if config.alibi_position_embedding:
        raise ConfigError(f"{source}: 'alibi_position_embedding' is true, but TencentPretrain's encoder never "
                          "applies ALiBi (it parses the option and ignores it), so the exported model would run "
                          "without positions there; it cannot be exported")
    if config.rotary_position_embedding:
        problems = {
            "rope_theta": (config.rope_theta != 10000.0, "TencentPretrain's rotary base is fixed at 10000"),
            "rope_scaling": (bool(config.rope_scaling.type), "TencentPretrain has no RoPE scaling"),
            "decoder": (bool(config.decoder), "TencentPretrain rotates the encoder's self-attention only"),
            "attention_head_size": (config.head_size * config.heads_num != config.hidden_size,
                                    "TencentPretrain's rotary table has hidden_size // heads_num features"),
        }
        for key, (bad, why) in problems.items():
            if bad:
                raise ConfigError(f"{source}: '{key}' = {getattr(config, key)!r} with rotary positions cannot be "
                                  f"exported ({why})")
        extra["rotary_position_embedding"] = True
    if config.attention_qkv_bias:
        raise ConfigError(f"{source}: 'attention_qkv_bias' is true (Qwen2's q/k/v biases under "
                          "remove_transformer_bias); TencentPretrain has no such option")
    if config.kv_heads != config.heads_num:
        extra["local_kv_heads_num"] = config.kv_heads
    return extra


def export_embeddings(config: ModelConfig, source: str) -> Dict[str, List[str]]:
    """Our embedding lists -> theirs; UER-py scales word embeddings exactly when the source embedding has
    its sinusoid table, so scale_embedding must agree with that."""
    out = {}
    for key in ("embedding",) + (("tgt_embedding",) if config.decoder else ()):
        other = [n for n in getattr(config, key) if n.startswith("sinusoidalpos") and n != SINUSOID_OURS]
        if other:
            raise ConfigError(f"{source}: '{key}' has {other[0]!r}, a sinusoid table that is not UER-py's (theirs "
                              f"spaces frequencies by 10000^(-i/(d/2-1)) and starts at row 2: our "
                              f"'{SINUSOID_OURS}'); a UER-py model would compute different positions")
        out[key] = [SINUSOID_THEIRS if n == SINUSOID_OURS else n for n in getattr(config, key)]
    wants_scale = SINUSOID_OURS in config.embedding
    if config.scale_embedding != wants_scale:
        raise ConfigError(f"{source}: 'scale_embedding' is {config.scale_embedding}; UER-py multiplies word "
                          "embeddings by sqrt(emb_size) exactly when \"embedding\" has its \"sinusoidalpos\" "
                          f"table (ours: '{SINUSOID_OURS}'), so this model cannot be written as a UER-py one")
    return out

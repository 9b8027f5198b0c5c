"""Sliding-window local attention (uer/layers/local_attention.py) and the encoder-recipe config keys, without
transformers: the band is |i - j| <= window / 2, combines with the stack's scheme, gives a windowed layer the
same output as explicit masking, global layers follow ModernBERT's every-n pattern, and bad keys are refused
by name.  Parity with transformers' ModernBERT is tests/unit/test_modernbert.py."""

import pytest
import torch

from uer.config import config_from_dict
from uer.errors import ConfigError
from uer.layers.alibi import AlibiPosition
from uer.layers.attention import MultiHeadAttention, Positions
from uer.layers.local_attention import LocalWindow, is_local_layer
from uer.layers.masks import AttentionMask


def test_band_is_half_the_window_each_side():
    band = LocalWindow(4).bias(7, 7, "cpu")[0, 0]
    distance = (torch.arange(7)[:, None] - torch.arange(7)[None, :]).abs()
    assert torch.equal(band == 0, distance <= 2) and bool(torch.isinf(band[distance > 2]).all())
    with pytest.raises(ValueError, match="even"):
        LocalWindow(3)


def test_band_follows_per_row_positions_and_adds_to_the_inner_scheme():
    positions = Positions(torch.tensor([[0, 1, 2, 3], [5, 6, 7, 8]]), torch.tensor([[0, 1, 2, 3], [5, 6, 7, 8]]))
    alibi = AlibiPosition(2)
    both = LocalWindow(2, alibi).bias(4, 4, "cpu", positions)
    assert both.shape == (2, 2, 4, 4)
    inside = torch.isfinite(both)
    distance = (torch.arange(4)[:, None] - torch.arange(4)[None, :]).abs()
    assert torch.equal(inside[0, 0], distance <= 1) and torch.equal(inside[1, 1], distance <= 1)
    assert torch.equal(both[inside], alibi.bias(4, 4, "cpu", positions)[inside])


def test_windowed_attention_equals_explicit_masking():
    torch.manual_seed(0)
    attention = MultiHeadAttention(16, 2, 8, 0.0).eval()
    x = torch.randn(2, 9, 16)
    distance = (torch.arange(9)[:, None] - torch.arange(9)[None, :]).abs()
    with torch.no_grad():
        windowed = attention(x, AttentionMask(None), LocalWindow(4))
        explicit = attention(x, AttentionMask((distance <= 2)[None, None]))
        full = attention(x, AttentionMask(None))
    assert torch.allclose(windowed, explicit, atol=1e-6)
    assert not torch.allclose(windowed, full, atol=1e-3)


class Layers:
    def __init__(self, window, every):
        self.local_attention_window, self.global_attention_every_n_layers = window, every


def test_global_layers_every_n_from_layer_0():
    assert [is_local_layer(Layers(128, 3), i) for i in range(7)] == [False, True, True, False, True, True, False]
    assert not any(is_local_layer(Layers(0, 0), i) for i in range(4))
    assert all(is_local_layer(Layers(8, 0), i) for i in range(4))


def test_alibi_is_symmetric_for_a_bidirectional_encoder():
    """MosaicBERT's ALiBi: -slope * |i - j| on both sides."""
    bias = AlibiPosition(4).bias(6, 6, "cpu")
    assert torch.equal(bias, bias.transpose(-1, -2)) and bool((bias[0, :, 1, 0] < 0).all())


BASE = {"embedding": ["word"], "vocab_size": 50, "emb_size": 16, "hidden_size": 16, "feedforward_size": 24,
        "heads_num": 2, "layers_num": 3, "layernorm_positioning": "pre", "rotary_position_embedding": True,
        "target": ["mlm"]}


@pytest.mark.parametrize("change, key", [
    ({"local_attention_window": 5}, "local_attention_window"),
    ({"local_attention_window": -2}, "local_attention_window"),
    ({"global_attention_every_n_layers": 3}, "global_attention_every_n_layers"),
    ({"local_attention_window": 8, "global_attention_every_n_layers": 1}, "global_attention_every_n_layers"),
    ({"local_rope_theta": 10000.0}, "local_rope_theta"),
    ({"local_attention_window": 8, "local_rope_theta": 0.5}, "local_rope_theta"),
    ({"layernorm_bias": False, "layernorm": "rms"}, "layernorm_bias"),
    ({"first_layer_attention_norm": False, "layernorm_positioning": "post"}, "first_layer_attention_norm"),
    ({"mlm_dense_bias": False, "target": ["lm"], "mask": "causal"}, "mlm_dense_bias"),
])
def test_bad_recipe_keys_are_refused_by_name(change, key):
    with pytest.raises(ConfigError, match=key):
        config_from_dict({**BASE, **change}, "m.json")

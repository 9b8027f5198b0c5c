"""Rotary position embeddings (RoPE, Su et al. 2021) as a position scheme: q and k are rotated by
position-dependent angles, so q.k depends on the distance between the two tokens only.

Layout: Hugging Face's / LLaMA's "rotate half" — dimension i of a head pairs with i + d/2 (not with
i + 1 as in Meta's complex-number code), over the whole head.  Hugging Face LLaMA / Mistral / Qwen2
checkpoints therefore load without permuting the q/k rows.

Frequencies: inv_freq[i] = theta^(-2i/d), optionally rescaled for longer contexts (``rope_scaling``:
linear, static NTK, dynamic NTK, LLaMA-3.1's frequency-dependent "llama3").  Angles are computed in
fp32 from each token's own position (a (B, L) tensor: rows of a left-padded batch differ).
"""

import math
from typing import Dict, Optional, Tuple

import torch

from uer.layers.attention import PositionScheme


def base_inverse_frequencies(head_size: int, theta: float) -> torch.Tensor:
    """theta^(-2i/d) for i < d/2, in fp32."""
    exponents = torch.arange(0, head_size, 2, dtype=torch.int64).float() / head_size
    return 1.0 / (theta ** exponents)


def llama3_inverse_frequencies(inv_freq: torch.Tensor, factor: float, low_freq_factor: float,
                               high_freq_factor: float, original_length: int) -> torch.Tensor:
    """LLaMA-3.1: wavelengths longer than original_length / low_freq_factor are stretched by ``factor``,
    those shorter than original_length / high_freq_factor are kept, and in between the two are blended
    linearly in original_length / wavelength."""
    wavelength = 2 * math.pi / inv_freq
    long_wave = original_length / low_freq_factor
    short_wave = original_length / high_freq_factor
    blend = (original_length / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)
    blended = (1 - blend) * inv_freq / factor + blend * inv_freq
    out = torch.where(wavelength > long_wave, inv_freq / factor, inv_freq)
    middle = (wavelength >= short_wave) & (wavelength <= long_wave)
    return torch.where(middle, blended, out)


def ntk_theta(theta: float, scale: float, head_size: int) -> float:
    """NTK-aware scaling: a larger base stretches the low frequencies by ~scale, keeps the high ones."""
    return theta * scale ** (head_size / (head_size - 2))


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the two halves of the last dimension."""
    half = x.size(-1) // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class RotaryPosition(PositionScheme):
    """``rotate(q, k, positions)``: q (B, h, L, d), k (B, kv_h, L, d), positions (B or 1, L).  No
    parameters (nothing is saved); the frequency table is kept per device."""

    def __init__(self, head_size: int, theta: float = 10000.0, scaling: str = "", factor: float = 1.0,
                 low_freq_factor: float = 1.0, high_freq_factor: float = 4.0, original_length: int = 0):
        super().__init__()
        if head_size % 2:
            raise ValueError(f"rotary embeddings need an even head size, got {head_size}")
        self.head_size, self.theta, self.scaling, self.factor = head_size, theta, scaling, factor
        self.original_length = original_length
        if scaling == "linear":
            inv_freq = base_inverse_frequencies(head_size, theta) / factor
        elif scaling == "ntk":
            inv_freq = base_inverse_frequencies(head_size, ntk_theta(theta, factor, head_size))
        elif scaling == "llama3":
            inv_freq = llama3_inverse_frequencies(base_inverse_frequencies(head_size, theta), factor,
                                                  low_freq_factor, high_freq_factor, original_length)
        elif scaling in ("", "dynamic"):     # dynamic: the base table up to original_length
            inv_freq = base_inverse_frequencies(head_size, theta)
        else:
            raise ValueError(f"unknown rope scaling '{scaling}'")
        # A plain attribute, not a buffer: model.half() must not round the frequencies.
        self.inv_freq = inv_freq
        self._per_device: Dict[str, torch.Tensor] = {}
        # The layers of a stack rotate at the same positions: cos/sin of the latest positions tensor
        # (held, so its identity cannot be reused by another tensor) are computed once per forward.
        self._latest: Optional[Tuple[torch.Tensor, tuple, torch.Tensor, torch.Tensor]] = None

    def frequencies(self, positions: torch.Tensor) -> torch.Tensor:
        """inv_freq (d/2,) on the positions' device; dynamic NTK grows theta with the longest position."""
        if self.scaling == "dynamic":
            length = int(positions.max()) + 1 if positions.numel() else 0
            if length > self.original_length:
                scale = self.factor * length / self.original_length - (self.factor - 1)
                return base_inverse_frequencies(self.head_size, ntk_theta(self.theta, scale, self.head_size)
                                                ).to(positions.device)
        key = str(positions.device)
        table = self._per_device.get(key)
        if table is None:
            table = self._per_device[key] = self.inv_freq.to(positions.device)
        return table

    def cos_sin(self, positions: torch.Tensor, dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
        """cos, sin (B or 1, 1, L, d) of every position's angles, in ``dtype``."""
        latest = self._latest
        if latest is not None and latest[0] is positions and latest[1] == (dtype, positions._version):
            return latest[2], latest[3]
        angles = positions.float()[..., None] * self.frequencies(positions)     # (B, L, d/2), fp32
        angles = torch.cat([angles, angles], dim=-1)[:, None]                     # (B, 1, L, d)
        cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)
        self._latest = (positions, (dtype, positions._version), cos, sin)
        return cos, sin

    def rotate(self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor):
        cos, sin = self.cos_sin(positions, q.dtype)
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def build_rotary_position(config) -> Optional[RotaryPosition]:
    """The stack's rotary scheme when ``rotary_position_embedding`` is on, else None."""
    if not config.rotary_position_embedding:
        return None
    s = config.rope_scaling
    return RotaryPosition(config.head_size, config.rope_theta, s.type, s.factor, s.low_freq_factor,
                          s.high_freq_factor, s.original_max_position_embeddings or config.max_seq_length)

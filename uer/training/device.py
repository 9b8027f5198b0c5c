"""Choosing the device and knowing its peak, for the local engine and the MFU column."""

import os
import re
from typing import Optional, Tuple

import torch

from uer.errors import ConfigError

# Dense (no 2:4 sparsity) peaks in TFLOP/s from NVIDIA's datasheets, as (pattern matched against
# torch.cuda.get_device_name, (bf16/fp16 tensor, tf32 tensor, fp32 without tensor cores)).  First
# match wins, so specific names come before the families they share a prefix with (A100 before
# A10, H100 PCIe/NVL before plain H100 = SXM).  A card that is not here has no MFU unless
# --peak_tflops / UER_PEAK_TFLOPS names its peak: an invented denominator is worse than none.
GPU_PEAKS: Tuple[Tuple[str, Tuple[float, float, float]], ...] = (
    (r"H100.*PCIe", (756.5, 378.0, 51.2)),
    (r"H100.*NVL", (835.0, 417.5, 60.0)),
    (r"H200.*NVL", (835.0, 417.5, 60.0)),
    (r"GH200|H100|H200|H800", (989.4, 494.7, 66.9)),      # SXM (the H200 has the H100 SXM's compute)
    (r"A100|A800", (312.0, 156.0, 19.5)),                 # 40 GB and 80 GB, SXM and PCIe alike
    (r"L40S", (362.0, 183.0, 91.6)),
    (r"L40", (181.0, 90.5, 90.5)),
    (r"\bL4\b", (121.0, 60.0, 30.3)),
    (r"A10G?\b", (125.0, 62.5, 31.2)),                    # the A10 datasheet; clouds quote it for the A10G
    (r"RTX 4090", (165.2, 82.6, 82.6)),                   # fp32-accumulate tensor rate
    (r"V100.*PCIE", (112.0, 14.0, 14.0)),                 # no TF32 before Ampere: the fp32 rate
    (r"V100", (125.0, 15.7, 15.7)),
    (r"\bT4\b", (65.0, 8.1, 8.1)),
)

PEAK_ENV = "UER_PEAK_TFLOPS"
HALF_PRECISIONS = ("bf16", "fp16")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name}: not a device name; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device is available; use --device cpu")
    return device


def tf32_matmuls() -> bool:
    """Whether fp32 matrix products may run on TF32 tensor cores (torch's setting, off by default)."""
    return torch.get_float32_matmul_precision() != "highest" or torch.backends.cuda.matmul.allow_tf32


def peak_for_name(name: str, precision: str = "bf16", tf32: bool = False) -> Optional[float]:
    """The dense peak (TFLOP/s) of the GPU called ``name`` at ``precision`` (bf16 | fp16 | fp32;
    fp32 counts TF32 tensor cores when ``tf32``), or None for a card not in GPU_PEAKS."""
    for pattern, (half, tf32_peak, fp32_peak) in GPU_PEAKS:
        if re.search(pattern, name, flags=re.IGNORECASE):
            if precision in HALF_PRECISIONS:
                return half
            return tf32_peak if tf32 else fp32_peak
    return None


def override_peak(value: Optional[float] = None) -> Optional[float]:
    """A peak given by hand: ``value`` (--peak_tflops) when > 0, else the UER_PEAK_TFLOPS environment
    variable, else None."""
    if value:
        if value < 0:
            raise ConfigError(f"--peak_tflops {value}: a peak is positive TFLOP/s per device (0: from the device table)")
        return float(value)
    env = os.environ.get(PEAK_ENV, "").strip()
    if not env:
        return None
    try:
        peak = float(env)
    except ValueError:
        peak = -1.0
    if not peak > 0:
        raise ConfigError(f"environment variable {PEAK_ENV}={env!r}: give the device's peak as a positive number "
                          "of TFLOP/s, or unset it to use the device table")
    return peak


def peak_tflops(device: torch.device, precision: str = "bf16", override: Optional[float] = None) -> Optional[float]:
    """The peak one device reaches at ``precision``, the denominator of MFU: the override
    (--peak_tflops, then UER_PEAK_TFLOPS) if given, else the GPU table; None (no MFU) for a CPU
    or an unlisted card — a CPU's peak depends on cores, clocks and vector units nobody reports."""
    given = override_peak(override)
    if given is not None:
        return given
    if device.type != "cuda":
        return None
    return peak_for_name(torch.cuda.get_device_name(device), precision, tf32_matmuls())

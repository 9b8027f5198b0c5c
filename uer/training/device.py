"""Choosing the device and knowing its peak, for the local engine and the MFU column."""

import torch

from uer.errors import ConfigError

# Dense bf16/fp16 tensor-core peaks (TFLOP/s) of common GPUs, matched by name.
GPU_PEAK_TFLOPS = (("H200", 989.0), ("H100", 989.0), ("A100", 312.0), ("A800", 312.0), ("L40", 181.0),
                   ("4090", 165.0), ("V100", 125.0), ("A10", 125.0))


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


def peak_tflops(device: torch.device) -> float:
    """The device's dense half-precision peak, or 0 when unknown (then no MFU is reported)."""
    if device.type != "cuda":
        return 0.0
    name = torch.cuda.get_device_name(device)
    return next((value for key, value in GPU_PEAK_TFLOPS if key in name), 0.0)

"""``--compile``: torch.compile of the model, whose forward includes the targets' losses.

``nn.Module.compile`` compiles the module's call in place, so parameter names, state dicts,
checkpoints and DDP wrapping stay exactly as without it (no ``_orig_mod.`` prefix).  The loss is
computed inside the model's forward (uer.targets), so it is compiled with it.  Inductor needs a C
compiler on the CPU and Triton on a GPU; ``check_compile_works`` finds out before training starts,
so a missing toolchain is one clear error instead of a traceback at the first step.
"""

from typing import Optional

import torch
from torch import nn

from uer.errors import ConfigError

# torch.compile's modes.  "default" is the sensible choice for training: "reduce-overhead" adds CUDA
# graphs (static shapes only; the unpad switch changes shapes every batch), "max-autotune" spends
# minutes benchmarking kernels before the first step.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

_probe_error: dict = {}


def check_compile_works(device: torch.device) -> Optional[str]:
    """None when torch.compile can build and run a kernel on ``device``, else why not (cached)."""
    key = device.type
    if key not in _probe_error:
        try:
            fn = torch.compile(lambda x: x * 2 + 1)
            fn(torch.ones(4, device=device))
            _probe_error[key] = None
        except Exception as e:       # inductor reports a missing compiler / Triton as many types
            _probe_error[key] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    return _probe_error[key]


def compile_model(model: nn.Module, mode: str, device: torch.device, engine: str = "local") -> nn.Module:
    """Compile ``model`` in place with ``mode`` (one of COMPILE_MODES) and return it."""
    if mode not in COMPILE_MODES:
        raise ConfigError(f"--compile {mode!r}: not a torch.compile mode; use one of {', '.join(COMPILE_MODES)}")
    if engine == "deepspeed":
        raise ConfigError("--compile with --engine deepspeed: DeepSpeed wraps the model itself (use its "
                          "\"compile\" section); drop --compile, or use the local or ddp engine")
    problem = check_compile_works(device)
    if problem is not None:
        raise ConfigError(f"--compile: torch.compile cannot run on {device.type} here ({problem}); install a C "
                          "compiler (CPU) or Triton (GPU), or drop --compile")
    model.compile(mode=mode)
    return model

"""Reading PyTorch ``.pt`` files without ever running pickled code.

Every load path of the toolkit goes through here: uer weights and training states, Hugging Face
``pytorch_model.bin`` files, and DeepSpeed's checkpoint files, which DeepSpeed itself reads with
``torch.load(weights_only=False)`` — a ``__reduce__`` payload placed in a step directory would run
on ``--resume`` or consolidation.  ``deepspeed_loads_restricted`` re-routes those calls to the
restricted unpickler with an explicit allow-list of the few plain classes DeepSpeed stores.

A file that cannot be read gets one sentence that says which of two things it is:
  * pickled objects besides tensors (a ``GLOBAL`` the restricted unpickler refuses): named, refused;
  * anything else (random bytes, truncation, an empty file, a foreign format): corrupt or not a
    PyTorch file.
"""

import contextlib
import errno
import os
import pickle
import re
import threading
from typing import Iterable, Iterator, Optional

import torch

from uer.errors import CheckpointError

_GLOBAL = re.compile(r"(?:unsupported GLOBAL|Unsupported global:?)\s*(?:GLOBAL\s*)?([\w.]+)", re.IGNORECASE)


def load_failure(path: str, error: BaseException, what: str = "checkpoint") -> CheckpointError:
    """The one-line error for a ``torch.load(weights_only=True)`` failure on ``path``."""
    text = str(error)
    found = _GLOBAL.search(text)
    if isinstance(error, pickle.UnpicklingError) and found:
        return CheckpointError(f"{what} {path} contains pickled Python objects besides tensors "
                               f"({found.group(1)}); uer refuses to execute them. Re-save it as a plain "
                               "state dict of tensors (or safetensors), or use a copy you trust")
    if isinstance(error, FileNotFoundError):
        return CheckpointError(f"{what} {path} does not exist")
    size = os.path.getsize(path) if os.path.isfile(path) else None
    detail = "it is empty" if size == 0 else "it is truncated, corrupt, or not a PyTorch file"
    return CheckpointError(f"cannot read {what} {path}: {detail}; restore it or pick another checkpoint")


def load_tensors_file(path: str, what: str = "checkpoint", *, mmap: bool = False,
                      allowed: Iterable[type] = ()) -> object:
    """``torch.load`` on the CPU with the restricted unpickler (plus ``allowed`` classes)."""
    path = os.fspath(path)
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return _original_load(path, map_location="cpu", weights_only=True, mmap=mmap or None)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, KeyError,
            IndexError, TypeError, AttributeError, UnicodeDecodeError) as e:
        if isinstance(e, OSError) and e.errno == errno.EIO:
            raise      # the disk failed, not the file: cli_entry reports it as such
        if isinstance(e, PermissionError):
            raise CheckpointError(f"cannot read {what} {path}: permission denied") from None
        raise load_failure(path, e, what) from None


_original_load = torch.load
_patch_lock = threading.Lock()
_depth = 0


def deepspeed_safe_classes() -> list:
    """The plain classes DeepSpeed puts in its checkpoint files (beyond tensors, containers,
    numbers and strings): loss scalers and the ZeRO stage enum.  None of them runs code when
    rebuilt (the restricted unpickler only allocates them and sets their ``__dict__``)."""
    classes = []
    for module, names in (("deepspeed.runtime.fp16.loss_scaler", ("LossScaler", "DynamicLossScaler")),
                          ("deepspeed.runtime.zero.config", ("ZeroStageEnum",)),
                          ("deepspeed.utils.tensor_fragment", ("fragment_address",))):
        try:
            loaded = __import__(module, fromlist=list(names))
        except ImportError:
            continue
        classes.extend(getattr(loaded, n) for n in names if hasattr(loaded, n))
    return classes


@contextlib.contextmanager
def deepspeed_loads_restricted(what: str = "DeepSpeed checkpoint file") -> Iterator[None]:
    """While active, every ``torch.load`` (DeepSpeed's included, whatever ``weights_only`` it asks
    for) is the restricted one with DeepSpeed's allow-list; a refused file raises our one-line
    ``CheckpointError`` naming it."""
    allowed = deepspeed_safe_classes()

    def restricted_load(f, map_location=None, *args, weights_only: Optional[bool] = None, mmap=None, **kwargs):
        del args, weights_only      # pickle_module and friends are not ours to honour here
        name = os.fspath(f) if isinstance(f, (str, os.PathLike)) else getattr(f, "name", repr(f))
        try:
            with torch.serialization.safe_globals(allowed):
                return _original_load(f, map_location=map_location, weights_only=True, mmap=mmap)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError) as e:
            raise load_failure(str(name), e, what) from None

    global _depth
    with _patch_lock:         # one restricted window at a time; nested windows share the outer one
        if _depth == 0:
            torch.load = restricted_load
        _depth += 1
    try:
        yield
    finally:
        with _patch_lock:
            _depth -= 1
            if _depth == 0:
                torch.load = _original_load

"""Small shared helpers: atomic file writes and seeding."""

import contextlib
import errno
import json
import os
import random
import uuid
from typing import Iterator

import numpy as np

# torch is imported where used: preprocess.py and the vocabulary tools never need it (about a second per run).


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path) -> Iterator[str]:
    """Yield a temporary name beside ``path``; when the block finishes the file is synced and renamed
    onto ``path`` (same directory = same filesystem, so the rename is atomic and readers see the
    old file or the new one, never a part).  On an exception the temporary file is removed, and a
    full disk or a place that cannot be written becomes one ``OutputError`` naming ``path``.  Files
    are opened normally by the caller, so they get the usual umask permissions."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        os.makedirs(directory, exist_ok=True)
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())     # some writers (safetensors) create owner-only files
        os.replace(tmp, path)
    except OSError as e:
        if e.errno not in WRITE_ERRNOS:
            raise
        raise write_failure(path, e.strerror or str(e), e.errno) from None
    except RuntimeError as e:            # torch.save's C++ writer reports a full disk as one of these
        if _errno_from_free_space(directory) != errno.ENOSPC:
            raise
        raise write_failure(path, str(e).strip().splitlines()[-1], errno.ENOSPC) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


WRITE_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG)


def _errno_from_free_space(directory: str) -> int:
    try:
        stats = os.statvfs(directory)
    except OSError:
        return 0
    return errno.ENOSPC if stats.f_bavail * stats.f_frsize < 64 * 2**20 else 0


def write_failure(path: str, reason: str, code: int):
    from uer.errors import OutputError
    what = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
            errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
            errno.EPERM: "permission denied"}.get(code, reason)
    existing = " (the previous file there is intact)" if os.path.exists(path) else ""
    return OutputError(f"cannot write {path}: {what}{existing}; free space or choose a writable output path")


def atomic_write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        # newline="\n": byte-identical files on every platform.
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)


def atomic_torch_save(obj, path) -> None:
    import torch
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def read_json_object(path: str, where: str, error=None, fix: str = "") -> dict:
    """Load a JSON file that must hold an object; a syntax error or another type raises ``error``
    (a UerError subclass, ConfigError by default) naming ``where``, the line and ``fix``."""
    from uer.errors import ConfigError
    error = error or ConfigError
    from uer.data.text_files import open_text
    try:
        with open_text(path, where) as f:       # not UTF-8: line and byte named; a BOM is fine
            value = json.load(f)
    except json.JSONDecodeError as e:
        raise error(f"{where} line {e.lineno}: not valid JSON ({e.msg}){fix}")
    if not isinstance(value, dict):
        raise error(f"{where}: expected a JSON object, got {type(value).__name__}{fix}")
    return value


def set_seed(seed: int) -> None:
    import torch
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)

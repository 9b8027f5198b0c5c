"""One run per output path: ``<output_model_path>.lock``, held for the run's lifetime.

The lock is an ``flock`` on that file, so the kernel releases it when the holder dies however it
dies (kill -9 included): a lock file found unlocked is stale by construction and is taken over
with a warning naming the pid recorded in it.  The file holds the holder's pid so that a second
run can say who is in the way.  Only rank 0 of a distributed run takes it; the
other ranks learn the outcome through a collective (``lock_output``), never by touching the file.
"""

import fcntl
import logging
import os
import socket
from typing import Callable, List, Optional

import torch.distributed as dist

from uer.errors import ConfigError, UerError
from uer.leftovers import remove_leftovers

logger = logging.getLogger("uer")

LOCK_SUFFIX = ".lock"


class RunLock:
    def __init__(self, output_path: str, flag: str = "--output_model_path"):
        self.output_path = os.fspath(output_path)
        self.path = self.output_path + LOCK_SUFFIX
        self.flag = flag
        self._fd: Optional[int] = None
        self._created: List[str] = []     # directories made for the lock, removed again if left empty

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "RunLock":
        """Take the lock or raise a ``ConfigError`` naming the pid that holds it."""
        directory = os.path.dirname(os.path.abspath(self.path))
        missing = directory
        while not os.path.exists(missing):
            self._created.append(missing)
            missing = os.path.dirname(missing)
        os.makedirs(directory, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise ConfigError(f"{self.flag} {self.output_path} is in use by another run ({holder}, lock file "
                                  f"{self.path}); wait for it to finish, stop it, or choose another "
                                  f"{self.flag}") from None
            # The holder we waited on may have released and deleted the file between our open and
            # our flock: then we locked an orphan inode and must try again on the new file.
            if _same_inode(fd, self.path):
                break
            os.close(fd)
        previous = _read_holder(fd)
        if previous:
            logger.warning("%s: took over a stale lock left by %s, which is no longer running", self.path,
                           previous)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Delete the file, then unlock (in that order, so a newcomer never sees our unlocked file)."""
        if self._fd is None:
            return
        try:
            if _same_inode(self._fd, self.path):
                os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None
        for directory in self._created:      # innermost first; a run that wrote nothing leaves nothing
            try:
                os.rmdir(directory)
            except OSError:
                break
        self._created = []

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 256).decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else ""


def _same_inode(fd: int, path: str) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def lock_output(output_path: str, flag: str = "--output_model_path",
                checks: Optional[Callable[[], None]] = None) -> Optional[RunLock]:
    """Rank 0 (or the only process) takes the lock on ``output_path``, removes the temporary files a
    killed run left beside it (the lock holder is the only writer there) and runs ``checks``; every rank then learns the outcome, so a refused run stops on every
    rank instead of leaving the others waiting for rank 0 at the next collective.  Returns the held
    lock on rank 0, None elsewhere; the caller releases it when the run ends."""
    from uer.training import distributed
    is_main = not dist.is_initialized() or dist.get_rank() == 0
    lock, failure = None, None
    if is_main:
        try:
            lock = RunLock(output_path, flag).acquire()
            directory, name = os.path.split(os.path.abspath(output_path))
            remove_leftovers(directory, "." + name, f"run into {output_path}")
            if checks is not None:
                checks()
        except UerError as e:
            failure = e
            if lock is not None:
                lock.release()
    message = distributed.gather(str(failure) if failure else None)[0]
    if failure is not None:
        raise failure
    if message is not None:
        raise ConfigError(message)
    return lock

"""What a killed process leaves behind, and removing it on the next run into the same place.

Writers never write in place: ``uer.utils.atomic_path`` writes ``.<name>.tmp-<pid>-<hex>`` beside
the target, the dataset writer fills ``<dataset>.tmp-<pid>-<ms>/`` and moves an old dataset aside
to ``<dataset>.old-<pid>/`` for the instant of the swap.  A normal failure removes these; kill -9
cannot.  Every such name carries its writer's pid, so a later run removes exactly those whose
writer is no longer running and leaves a concurrent writer's work alone.
"""

import logging
import os
import re
import shutil
from typing import List

logger = logging.getLogger("uer")

# ".tmp-<pid>-<hex or ms>" (atomic files, dataset build directories) or ".old-<pid>" (dataset swap).
_LEFTOVER = re.compile(r"\.(?:tmp-(\d+)-[0-9a-f]+|old-(\d+))$")


def writer_pid(name: str):
    """The pid in a temporary name, or None if ``name`` is not one."""
    m = _LEFTOVER.search(name)
    return int(m.group(1) or m.group(2)) if m else None


def is_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:      # alive, someone else's
        return True
    return True


def remove_leftovers(directory: str, prefix: str, what: str) -> List[str]:
    """Remove the temporary files and directories in ``directory`` whose names start with
    ``prefix`` and whose writer is dead; log one warning listing them.  Returns the removed paths."""
    directory = directory or "."
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    removed = []
    for name in sorted(names):
        pid = writer_pid(name)
        if pid is None or not name.startswith(prefix) or is_running(pid):
            continue
        path = os.path.join(directory, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except OSError as e:
            logger.warning("cannot remove %s, left by an interrupted %s: %s", path, what, e.strerror or e)
            continue
        removed.append(path)
    if removed:
        logger.warning("removed %d temporary file(s) left by an interrupted %s: %s", len(removed), what,
                       ", ".join(removed))
    return removed

"""Fine-tuning tasks (registry TASKS) and their heads (registry HEADS); importing this package
registers them.  Every task is trained and run by the one runner, ``uer.tasks.runner``.

Every module of this package is imported here, so a new task family really is one file: a
``Task`` subclass registered in ``TASKS`` (and, if no head fits, a head registered in ``HEADS``)
dropped into ``uer/tasks/`` — no list to edit."""

import importlib
import pkgutil

from uer.tasks import heads  # noqa: F401  (first: the tasks' heads and the shared ones)


def _import_every_task_module() -> None:
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if not module.startswith("_"):
            importlib.import_module(f"{__name__}.{module}")


_import_every_task_module()

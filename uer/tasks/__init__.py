"""Fine-tuning tasks: reader + head + metric + predictor per task family (registry TASKS)."""

from uer.tasks import classification, tagging  # noqa: F401
from uer.tasks import mrc  # noqa: F401  (task "mrc": its own procedure in uer.tasks.mrc, not runner's)

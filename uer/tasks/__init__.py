"""Fine-tuning tasks: reader + head + metric + predictor per task family (registry TASKS)."""

from uer.tasks import classification, tagging  # noqa: F401

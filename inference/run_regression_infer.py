"""Predict real values with a fine-tuned regressor: thin shim over uer.cli.task_scripts."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.task_scripts import regression_infer  # noqa: E402

if __name__ == "__main__":
    regression_infer()

"""Fine-tune a regressor (UER-py run_regression.py): thin shim over uer.cli.task_scripts."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.task_scripts import regression_finetune  # noqa: E402

if __name__ == "__main__":
    regression_finetune()

"""Fine-tune a multi-label classifier (UER-py run_classifier_multi_label.py): thin shim over uer.cli.task_scripts."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.task_scripts import multi_label_finetune  # noqa: E402

if __name__ == "__main__":
    multi_label_finetune()

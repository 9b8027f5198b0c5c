"""Fine-tune a C3 multiple-choice model (UER-py run_c3.py): thin shim over uer.cli.choice_scripts."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.choice_scripts import c3_finetune  # noqa: E402

if __name__ == "__main__":
    c3_finetune()

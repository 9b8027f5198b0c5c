"""Fine-tune a ChID multiple-choice model (UER-py run_chid.py): thin shim over uer.cli.choice_scripts."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.choice_scripts import chid_finetune  # noqa: E402

if __name__ == "__main__":
    chid_finetune()

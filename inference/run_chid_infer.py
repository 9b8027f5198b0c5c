"""Predict with a fine-tuned ChID multiple-choice model (UER-py run_chid_infer.py): thin shim over
uer.cli.choice_scripts."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.choice_scripts import chid_infer  # noqa: E402

if __name__ == "__main__":
    chid_infer()

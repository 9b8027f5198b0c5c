"""Predict with a fine-tuned C3 multiple-choice model (UER-py run_c3_infer.py): thin shim over
uer.cli.choice_scripts."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.choice_scripts import c3_infer  # noqa: E402

if __name__ == "__main__":
    c3_infer()

"""Predict with a fine-tuned two-tower sentence-pair classifier (UER-py run_classifier_siamese_infer.py):
thin shim over uer.cli.pair_scripts."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.pair_scripts import siamese_infer  # noqa: E402

if __name__ == "__main__":
    siamese_infer()

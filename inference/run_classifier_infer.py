"""Predict with a fine-tuned classifier: thin shim over uer.cli.classifier."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.classifier import infer_main  # noqa: E402

if __name__ == "__main__":
    infer_main()

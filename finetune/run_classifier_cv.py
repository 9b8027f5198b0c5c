"""UER-py finetune/run_classifier_cv.py: thin shim over uer.cli.classifier_variants."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.classifier_variants import cv_finetune  # noqa: E402

if __name__ == "__main__":
    cv_finetune()

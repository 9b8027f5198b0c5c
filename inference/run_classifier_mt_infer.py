"""UER-py inference/run_classifier_mt_infer.py: thin shim over uer.cli.classifier_variants."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.classifier_variants import mt_infer  # noqa: E402

if __name__ == "__main__":
    mt_infer()

"""Answer questions with a fine-tuned span extractor: thin shim over uer.cli.cmrc."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.cmrc import infer_main  # noqa: E402

if __name__ == "__main__":
    infer_main()

"""Tag text with a fine-tuned sequence labeller: thin shim over uer.cli.ner."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.ner import infer_main  # noqa: E402

if __name__ == "__main__":
    infer_main()

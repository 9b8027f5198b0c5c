"""Generate a target for every line with a fine-tuned text2text model (UER-py run_text2text_infer.py):
thin shim over uer.cli.text2text."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.text2text import infer_main  # noqa: E402

if __name__ == "__main__":
    infer_main()

"""Fine-tune an encoder-decoder model on text-to-text pairs (UER-py run_text2text.py): thin shim over
uer.cli.text2text."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.text2text import finetune_main  # noqa: E402

if __name__ == "__main__":
    finetune_main()

"""Merge a LoRA adapter into its base checkpoint as a new weights file; see uer/cli/merge_lora.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.merge_lora import main  # noqa: E402

if __name__ == "__main__":
    main()

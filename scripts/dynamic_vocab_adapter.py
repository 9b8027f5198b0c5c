"""Adapt a checkpoint to a new vocabulary (UER-py's scripts/dynamic_vocab_adapter.py); see uer/cli/dynamic_vocab_adapter.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.dynamic_vocab_adapter import main  # noqa: E402

if __name__ == "__main__":
    main()

"""Compare two vocabularies (UER-py's scripts/diff_vocab.py); see uer/cli/diff_vocab.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.diff_vocab import main  # noqa: E402

if __name__ == "__main__":
    main()

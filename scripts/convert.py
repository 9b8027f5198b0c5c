"""Hugging Face <-> uer model conversion; see uer/convert/cli.py and docs."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.convert.cli import main  # noqa: E402

if __name__ == "__main__":
    main()

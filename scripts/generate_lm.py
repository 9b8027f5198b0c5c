"""Continue every line of a text file with a decoder-only LM (UER-py's scripts/generate_lm.py); see
uer/cli/generate_lm.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.generate_lm import main  # noqa: E402

if __name__ == "__main__":
    main()

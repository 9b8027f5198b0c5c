"""A target for every line of a text file from an encoder-decoder model (UER-py's generate_seq2seq.py); see
uer/cli/generate_seq2seq.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.generate_seq2seq import main  # noqa: E402

if __name__ == "__main__":
    main()

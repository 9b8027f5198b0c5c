"""Nearest neighbours by input word embeddings (UER-py's scripts/topn_words_indep.py); see uer/cli/topn_words_indep.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.topn_words_indep import main  # noqa: E402

if __name__ == "__main__":
    main()

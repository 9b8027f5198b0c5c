"""Context-dependent nearest neighbours (UER-py's scripts/topn_words_dep.py); see uer/cli/topn_words_dep.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.topn_words_dep import main  # noqa: E402

if __name__ == "__main__":
    main()

"""Sentence vectors from a uer checkpoint (UER-py's scripts/extract_feature.py); see uer/cli/extract_features.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.extract_features import main  # noqa: E402

if __name__ == "__main__":
    main()

"""Word embeddings of a checkpoint as text (UER-py's scripts/extract_embeddings.py); see uer/cli/extract_embeddings.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.extract_embeddings import main  # noqa: E402

if __name__ == "__main__":
    main()

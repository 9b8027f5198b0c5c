"""Quickstart: generate a corpus, build a vocab, preprocess, pretrain, fine-tune and infer (offline)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.quickstart.run import main  # noqa: E402

if __name__ == "__main__":
    main()

"""Shim: ``python preprocess.py --corpus_path ... --vocab_path ... --dataset_path ...``.
All logic lives in uer.cli.preprocess."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from uer.cli.preprocess import main  # noqa: E402

if __name__ == "__main__":
    main()

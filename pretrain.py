"""Pretrain a model: thin shim over uer.cli.pretrain (UER-py compatible flags)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from uer.cli.pretrain import main  # noqa: E402

if __name__ == "__main__":
    main()

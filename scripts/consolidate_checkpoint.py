"""A DeepSpeed checkpoint of any ZeRO stage -> one ordinary uer weights file: thin shim over
uer.cli.consolidate."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.consolidate import main  # noqa: E402

if __name__ == "__main__":
    main()

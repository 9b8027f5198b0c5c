"""Fine-tune extractive question answering (CMRC 2018): thin shim over uer.cli.cmrc (UER-py flags)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.cmrc import finetune_main  # noqa: E402

if __name__ == "__main__":
    finetune_main()

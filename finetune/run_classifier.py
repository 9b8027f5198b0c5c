"""Fine-tune a text classifier: thin shim over uer.cli.classifier (UER-py compatible flags)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.classifier import finetune_main  # noqa: E402

if __name__ == "__main__":
    finetune_main()

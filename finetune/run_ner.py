"""Fine-tune a sequence labeller (NER): thin shim over uer.cli.ner (UER-py compatible flags)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.ner import finetune_main  # noqa: E402

if __name__ == "__main__":
    finetune_main()

"""Fine-tune a cloze-style (prompt) classifier (UER-py run_classifier_prompt.py): thin shim over
uer.cli.prompt_scripts."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.prompt_scripts import classifier_prompt_finetune  # noqa: E402

if __name__ == "__main__":
    classifier_prompt_finetune()

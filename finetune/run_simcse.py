"""Train SimCSE sentence embeddings (UER-py run_simcse.py): thin shim over uer.cli.pair_scripts.
Sentence vectors of the trained model: scripts/extract_features.py --pooling <the same pooling>."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.pair_scripts import simcse_finetune  # noqa: E402

if __name__ == "__main__":
    simcse_finetune()

"""Average the weights of several checkpoints (UER-py's scripts/average_models.py); see uer/cli/average_models.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.average_models import main  # noqa: E402

if __name__ == "__main__":
    main()

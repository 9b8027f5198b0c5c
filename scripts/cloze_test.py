"""Fill-mask top-n with a masked-LM checkpoint (UER-py's scripts/cloze_test.py); see uer/cli/cloze_test.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.cli.cloze_test import main  # noqa: E402

if __name__ == "__main__":
    main()

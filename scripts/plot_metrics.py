"""Plot training curves from metrics JSONL files: thin shim over uer.tools.plot_metrics."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.tools.plot_metrics import main  # noqa: E402

if __name__ == "__main__":
    main()

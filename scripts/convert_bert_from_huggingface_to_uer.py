"""UER-py compatible flags (--input_model_path --output_model_path [--layers_num] [--target bert|mlm])
over scripts/convert.py; sizes come from the config.json beside the input file."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.convert.cli import bert_shim_main  # noqa: E402

if __name__ == "__main__":
    bert_shim_main()

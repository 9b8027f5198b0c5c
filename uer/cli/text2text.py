"""finetune/run_text2text.py and inference/run_text2text_infer.py: task 'text2text' (uer.tasks.text2text)
through the one task command line (`uer.cli.tasks`: UER-py's flags, the task's own, every engine)."""

import functools

from uer.cli.tasks import finetune_main as _finetune_main, finetune_parser as _finetune_parser
from uer.cli.tasks import infer_main as _infer_main, infer_parser as _infer_parser

finetune_main = _finetune_main("text2text")
infer_main = _infer_main("text2text")
finetune_parser = functools.partial(_finetune_parser, "text2text")
infer_parser = functools.partial(_infer_parser, "text2text")

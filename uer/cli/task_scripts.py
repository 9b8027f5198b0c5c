"""Entry points of the task scripts without a module of their own (console scripts and the
finetune/ + inference/ shims): ``<task>_finetune`` and ``<task>_infer`` for every task below."""

from uer.cli.tasks import finetune_main, infer_main

regression_finetune, regression_infer = finetune_main("regression"), infer_main("regression")
multi_label_finetune, multi_label_infer = finetune_main("multi_label"), infer_main("multi_label")
dbqa_finetune, dbqa_infer = finetune_main("dbqa"), infer_main("dbqa")

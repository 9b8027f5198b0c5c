"""Entry points of the multiple-choice task scripts (console scripts and the finetune/ + inference/
shims): C3 reading comprehension (UER-py run_c3.py / run_c3_infer.py) and ChID idiom cloze
(run_chid.py / run_chid_infer.py); the tasks are ``uer.tasks.c3`` and ``uer.tasks.chid``."""

from uer.cli.tasks import finetune_main, infer_main

c3_finetune, c3_infer = finetune_main("c3"), infer_main("c3")
chid_finetune, chid_infer = finetune_main("chid"), infer_main("chid")

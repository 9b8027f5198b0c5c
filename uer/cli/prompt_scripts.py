"""Entry points of prompt (cloze-style) classification, UER-py's run_classifier_prompt.py and
run_classifier_prompt_infer.py: console scripts and the finetune/ + inference/ shims."""

from uer.cli.tasks import finetune_main, infer_main

classifier_prompt_finetune = finetune_main("classifier_prompt")
classifier_prompt_infer = infer_main("classifier_prompt")

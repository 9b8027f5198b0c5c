"""Entry points of the sentence-pair task scripts (console scripts and the finetune/ + inference/
shims): two-tower classification (UER-py run_classifier_siamese.py) and SimCSE (run_simcse.py;
its sentence vectors come out of scripts/extract_features.py, as in UER-py, and ``simcse_infer``
writes the cosine similarity of text_a/text_b pairs)."""

from uer.cli.tasks import finetune_main, infer_main

siamese_finetune, siamese_infer = finetune_main("siamese"), infer_main("siamese")
simcse_finetune, simcse_infer = finetune_main("simcse"), infer_main("simcse")

from setuptools import find_packages, setup

setup(
    name="uer",
    version="0.1.0",
    description="A modular pretraining toolkit: registries of embeddings, encoders and targets, "
                "indexed datasets, one resumable training loop.",
    packages=find_packages(include=["uer", "uer.*"]),
    python_requires=">=3.9",
    install_requires=["torch>=2.1", "numpy", "sentencepiece", "pyyaml", "tqdm", "safetensors", "regex"],
    extras_require={
        # CI installs .[dev]: the distributed tests launch DeepSpeed ZeRO runs on the CPU; protobuf lets
        # transformers read SentencePiece .model files (tests/unit/test_spm_parity.py).
        "dev": ["pytest", "transformers", "protobuf", "matplotlib", "deepspeed"],
        "deepspeed": ["deepspeed"],
        "plot": ["matplotlib"],
    },
    entry_points={"console_scripts": [
        "uer-preprocess=uer.cli.preprocess:main",
        "uer-pretrain=uer.cli.pretrain:main",
        "uer-finetune-classifier=uer.cli.classifier:finetune_main",
        "uer-infer-classifier=uer.cli.classifier:infer_main",
        "uer-finetune-ner=uer.cli.ner:finetune_main",
        "uer-infer-ner=uer.cli.ner:infer_main",
        "uer-finetune-cmrc=uer.cli.cmrc:finetune_main",
        "uer-finetune-regression=uer.cli.task_scripts:regression_finetune",
        "uer-infer-regression=uer.cli.task_scripts:regression_infer",
        "uer-finetune-multi-label=uer.cli.task_scripts:multi_label_finetune",
        "uer-finetune-dbqa=uer.cli.task_scripts:dbqa_finetune",
        "uer-infer-dbqa=uer.cli.task_scripts:dbqa_infer",
        "uer-infer-multi-label=uer.cli.task_scripts:multi_label_infer",
        "uer-infer-cmrc=uer.cli.cmrc:infer_main",
        "uer-finetune-siamese=uer.cli.pair_scripts:siamese_finetune",
        "uer-infer-siamese=uer.cli.pair_scripts:siamese_infer",
        "uer-finetune-simcse=uer.cli.pair_scripts:simcse_finetune",
        "uer-finetune-prompt=uer.cli.prompt_scripts:classifier_prompt_finetune",
        "uer-infer-prompt=uer.cli.prompt_scripts:classifier_prompt_infer",
        "uer-cloze-test=uer.cli.cloze_test:main",
        "uer-average-models=uer.cli.average_models:main",
        "uer-topn-words-indep=uer.cli.topn_words_indep:main",
        "uer-topn-words-dep=uer.cli.topn_words_dep:main",
        "uer-extract-embeddings=uer.cli.extract_embeddings:main",
        "uer-dynamic-vocab-adapter=uer.cli.dynamic_vocab_adapter:main",
        "uer-diff-vocab=uer.cli.diff_vocab:main",
        "uer-build-vocab=uer.cli.build_vocab:main",
        "uer-consolidate-checkpoint=uer.cli.consolidate:main",
        "uer-extract-features=uer.cli.extract_features:main",
    ]},
)

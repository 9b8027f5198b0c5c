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
        "uer-build-vocab=uer.cli.build_vocab:main",
        "uer-consolidate-checkpoint=uer.cli.consolidate:main",
        "uer-extract-features=uer.cli.extract_features:main",
    ]},
)

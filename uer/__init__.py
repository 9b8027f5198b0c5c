"""uer: a modular pretraining toolkit (UER-py / TencentPretrain lineage)."""

__version__ = "0.1.0"

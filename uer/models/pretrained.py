"""What a task model (classifier, tagger, feature extractor) keeps of a pretraining checkpoint: the
plain embedding + encoder config, and the weights to load into it.

Each PRETRAINERS entry says so through two optional hooks (a plain model needs neither):
``backbone_config(config)`` and ``backbone_state(config, state)`` — ELECTRA's are its discriminator's."""

import copy
from typing import Dict, Union

import torch

from uer.config import ModelConfig
from uer.models.model import plain_config
from uer.models.weights import read_weights
from uer.registry import PRETRAINERS


def _pretrainer(config: ModelConfig):
    return PRETRAINERS.get(config.pretrainer, where="key 'pretrainer'")


def backbone_config(config: ModelConfig) -> ModelConfig:
    """The plain config (``pretrainer`` "") of the embedding + encoder in a checkpoint built from
    ``config``: the config itself for a plain model, the discriminator's for ELECTRA.  A new object
    (nothing shared with ``config``), so a task may set labels_num etc. and save it as its own."""
    derive = getattr(_pretrainer(config), "backbone_config", None)
    return plain_config(copy.deepcopy(derive(config) if derive else config))


def backbone_source(config: ModelConfig, path: str) -> Union[str, Dict[str, torch.Tensor]]:
    """The checkpoint to load into ``backbone_config(config)``'s embedding + encoder: the file itself
    (``load_weights`` reads it — under ZeRO-3 on rank 0 only), or, for a composite pretrainer
    (ELECTRA, the DeBERTaV3 recipe), its exported backbone's state (the discriminator, GDES tables
    summed).  ``config`` is the checkpoint's own config, not ``backbone_config``'s result."""
    export = getattr(_pretrainer(config), "backbone_state", None)
    return export(config, read_weights(path)) if export else path

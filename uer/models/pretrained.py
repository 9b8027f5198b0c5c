"""What a task model (classifier, tagger, feature extractor) loads from a pretraining checkpoint."""

from typing import Dict, Union

import torch

from uer.config import ModelConfig
from uer.models.weights import read_weights


def backbone_source(config: ModelConfig, path: str) -> Union[str, Dict[str, torch.Tensor]]:
    """The checkpoint to load into an embedding + encoder: the file itself (``load_weights`` reads
    it — under ZeRO-3 on rank 0 only), or, when ``config`` names a composite pretrainer (ELECTRA,
    the DeBERTaV3 recipe), the exported discriminator's state (GDES tables summed)."""
    if not config.pretrainer:
        return path
    from uer.models.electra import discriminator_backbone_from_state
    return discriminator_backbone_from_state(config, read_weights(path))

"""Shared pieces of the utility tools (cloze test, neighbours, embeddings, vocabulary adapter,
checkpoint averaging): finding a checkpoint's config, loading a model from a checkpoint strictly,
and the word-embedding table of a checkpoint.  (Output paths are guarded by uer/cli/output_paths.py.)

Nothing here imports ``uer.cli``: the command-line modules parse flags and call these."""

import logging
import os
from typing import Optional, Tuple

import torch

from uer.config import ModelConfig, find_config_beside, load_config
from uer.errors import CheckpointError, ConfigError
from uer.models.weights import load_weights, read_weights

logger = logging.getLogger("uer")

WORD_EMBEDDING_KEY = "embedding.word.embedding.weight"


def config_path_for(weights_path: str, config_path: Optional[str]) -> str:
    path = config_path or find_config_beside(weights_path)
    if path is None:
        raise ConfigError(f"--config_path is required: no config was found beside {weights_path} "
                          f"({weights_path}.config.json or {os.path.splitext(weights_path)[0]}.json)")
    return path


def load_model_config(weights_path: str, config_path: Optional[str], vocab_size: int, vocab_source: str,
                      overrides: Optional[dict] = None) -> Tuple[ModelConfig, str]:
    """The checkpoint's config (given, or found beside it) with ``vocab_size`` checked and set."""
    path = config_path_for(weights_path, config_path)
    config = load_config(path, overrides or None)
    if config.vocab_size and config.vocab_size != vocab_size:
        raise ConfigError(f"the model config {path} says vocab_size {config.vocab_size} but the vocabulary "
                          f"{vocab_source} has {vocab_size} tokens; use the vocabulary the model was "
                          "trained with")
    config.vocab_size = vocab_size
    return config, path


def load_backbone(weights_path: str, config: ModelConfig):
    """Embedding + encoder of a checkpoint (a composite pretrainer's discriminator), loaded strictly;
    pretraining targets and task heads in the file are ignored."""
    from uer.models import Model
    from uer.models.pretrained import backbone_source
    if not os.path.isfile(weights_path):
        raise CheckpointError(f"checkpoint {weights_path} does not exist")
    state = backbone_source(config, weights_path)
    config.pretrainer = ""
    model = Model(config, with_target=False)
    load_weights(model, state, ignore_unexpected=("target.", "head."), source=weights_path)
    return model.eval()


def word_embedding_table(weights_path: str, vocab_size: int, vocab_source: str,
                         config_path: Optional[str] = None) -> torch.Tensor:
    """The (vocab_size, emb_size) token table of a checkpoint, padding rows dropped.  A plain
    checkpoint needs no config; a composite (ELECTRA) one is read through its config."""
    state = read_weights(weights_path)
    table = state.get(WORD_EMBEDDING_KEY)
    if table is None:
        path = config_path or find_config_beside(weights_path)
        if path is None:
            raise CheckpointError(f"{weights_path} has no {WORD_EMBEDDING_KEY} (a word embedding table) and "
                                  "no config was found beside it to read it as a composite checkpoint; pass "
                                  "--config_path, or a checkpoint with a word embedding")
        config = load_config(path)
        if not config.pretrainer:
            raise CheckpointError(f"{weights_path} has no {WORD_EMBEDDING_KEY}; is it a uer checkpoint of a "
                                  "model with a word embedding?")
        config.vocab_size = config.vocab_size or vocab_size
        import uer.models  # noqa: F401  (fills PRETRAINERS)
        from uer.registry import PRETRAINERS
        export = PRETRAINERS.get(config.pretrainer, where=f"{path}, key 'pretrainer'").backbone_state  # electra, metro
        table = export(config, state)[WORD_EMBEDDING_KEY]
    if table.dim() != 2:
        raise CheckpointError(f"{weights_path}: {WORD_EMBEDDING_KEY} has shape {tuple(table.shape)}, not "
                              "(rows, emb_size)")
    rows = table.size(0)
    # Rows are padded to a multiple of 64, so a matching vocabulary has rows - 63 .. rows tokens.
    if not rows - 64 < vocab_size <= rows:
        raise CheckpointError(f"the vocabulary {vocab_source} has {vocab_size} tokens but {weights_path} has "
                              f"{rows} embedding rows (a vocabulary of {max(rows - 63, 1)}..{rows} tokens); "
                              "use the vocabulary the model was trained with")
    return table[:vocab_size].float()


def load_mlm_model(weights_path: str, config: ModelConfig):
    """The embedding, encoder and "mlm" target of a pretraining checkpoint, loaded strictly; the
    file's other targets (e.g. BERT's "sp") are not built and their tensors are ignored."""
    from uer.models import Model
    if config.pretrainer:
        raise ConfigError(f"{weights_path} is a composite '{config.pretrainer}' checkpoint; the cloze test needs "
                          "a masked-LM checkpoint (a config whose \"target\" includes \"mlm\")")
    if "mlm" not in config.target:
        raise ConfigError(f"the model config of {weights_path} has targets {config.target}; the cloze test "
                          "needs a masked-LM checkpoint (a config whose \"target\" includes \"mlm\")")
    state = read_weights(weights_path)
    others = tuple(f"target.{name}." for name in config.target if name != "mlm")
    config.target = ["mlm"]
    model = Model(config, with_target=True)
    load_weights(model, state, ignore_unexpected=others, source=weights_path)
    return model.eval()

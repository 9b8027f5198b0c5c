"""The decoder side of a model (UER-py's five-part model: embedding -> encoder, tgt_embedding -> decoder
cross-attending the encoder -> target), built from TARGET_EMBEDDINGS and DECODERS.

Batch fields of an encoder-decoder model (UER-py's names): ``src``/``seg`` (B, S) the encoder input,
``tgt_in`` (B, T) the decoder input (the target shifted right behind a start token), ``tgt_out``
(B, T) the tokens to predict, ``tgt_seg`` (B, T) 1 at real target positions, 0 at padding.  The
``lm`` target predicts ``tgt_out`` at every real target position.
"""

import dataclasses
from typing import Optional, Tuple

import torch
from torch import nn

import uer.decoders  # noqa: F401  (fills DECODERS)
from uer.config import ModelConfig
from uer.embeddings import Embedding
from uer.registry import DECODERS, TARGET_EMBEDDINGS


def target_side_config(config: ModelConfig) -> ModelConfig:
    """``config`` as seen by the decoder's embedding and the output layer: the target vocabulary."""
    if not config.decoder:
        return config
    return dataclasses.replace(config, vocab_size=config.tgt_vocab_size or config.vocab_size)


def build_decoder_side(config: ModelConfig, embedding: Embedding
                       ) -> Tuple[Optional[Embedding], Optional[nn.Module]]:
    """(tgt_embedding, decoder), or (None, None) for an encoder-only / decoder-only model."""
    if not config.decoder:
        return None, None
    tgt_config = target_side_config(config)
    tgt_embedding = Embedding(tgt_config, parts=config.tgt_embedding, registry=TARGET_EMBEDDINGS,
                              shared_word=embedding if config.share_embedding else None)
    return tgt_embedding, DECODERS.get(config.decoder, where="key 'decoder'")(tgt_config)


def seq2seq_lm_labels(tgt_out: torch.Tensor, tgt_seg: Optional[torch.Tensor]) -> torch.Tensor:
    """The lm target's labels on the decoder side: ``tgt_out``, ignored (-100) at padding."""
    if tgt_seg is None:
        return tgt_out
    return tgt_out.masked_fill(tgt_seg == 0, -100)

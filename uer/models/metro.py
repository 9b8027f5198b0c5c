"""METRO-style replaced-token detection on an encoder-decoder (Bajaj et al. 2022, "METRO: Efficient
Denoising Pretraining of Large Scale Autoencoding Language Models with Model Generated Signals"):
an auxiliary MLM generator corrupts the encoder's input, the encoder carries ELECTRA's ``rtd`` head,
and the decoder keeps its own denoising objective.

How the generator's masking and the processor's noise (T5 span corruption) fit together, per batch:

(a) the processor's corrupted encoder input (``[CLS] x1 [extra_id_0] x4 ... [SEP]``, the span targets
    ``[extra_id_0] x2 x3 [extra_id_1] ... [SEP]`` beside it) is the "clean" input of the generator;
(b) the collator's ``mlm`` step masks a further ``masking.mask_prob`` of its tokens — never [CLS],
    [SEP], padding or the sentinels (the collator marks a T5 noiser's sentinels special) — and the
    small MLM generator predicts them and samples a replacement for each (Gumbel-max at the
    ``rtd`` temperature, no gradient through the sample);
(c) the encoder reads that sampled input; the ``rtd`` head on its output labels every real token
    replaced (sampled != original) or original, so sentinels and specials are always "original";
(d) the decoder cross-attends that encoder output and predicts the span targets (the ``lm`` target
    on the processor's ``tgt_out``), exactly as a plain T5 does — its targets never see the
    generator's samples, only its input does.

loss = rtd.gen_weight x generator MLM + rtd.disc_weight x encoder RTD + rtd.decoder_weight x decoder LM
(defaults 1, 50, 1: ELECTRA's and METRO's RTD weight, which brings a per-token binary cross-entropy
to the scale of the token-level cross-entropies; ``disc_weight`` 0 is allowed: plain T5 on
generator-corrupted inputs).

Everything else is the ELECTRA machinery of uer/models/electra.py, inherited: the generator parts
(``joint``, ``frozen``, ``unigram``, ``random``), corruption courses, embedding sharing (``shared``
points the encoder-decoder's embedding — and, through it, its decoder's shared table and tied
output — at the generator's; ``gdes`` adds the stop-gradient residual), temperature schedules.
The exported backbone (``discriminator_backbone_state``) is the plain encoder-decoder's state dict
with its ``lm`` head, which fine-tuning and scripts/generate_seq2seq.py load like a plain T5's.
"""

from typing import Dict

import torch

from uer.config import ModelConfig
from uer.errors import ConfigError
from uer.models.electra import ElectraPretrainer
from uer.models.electra_config import check_rtd_section
from uer.models.model import init_weights, plain_config
from uer.models.seq2seq import seq2seq_lm_labels
from uer.registry import PRETRAINERS
from uer.targets.rtd import ReplacedTokenDetectionTarget

METRO_TARGETS = ["lm", "mlm", "rtd"]


def seq2seq_config(config: ModelConfig) -> ModelConfig:
    """The encoder-decoder — what fine-tuning and generation keep: the config with its decoder's lm target."""
    return plain_config(config, target=["lm"])


def check_metro_config(c: ModelConfig, source: str) -> None:
    """What "pretrainer": "metro" requires of the rest of the config (ConfigError otherwise)."""
    if not c.decoder:
        raise ConfigError(f"{source}, key 'pretrainer': \"metro\" puts replaced-token detection on the encoder "
                          "of an encoder-decoder model, but the config has no \"decoder\"; start from "
                          "models/metro/t5_base.json, or use \"pretrainer\": \"electra\" for an encoder-only model")
    if sorted(c.target) != METRO_TARGETS:
        raise ConfigError(f"{source}, key 'target': the metro pretrainer trains [\"mlm\", \"rtd\", \"lm\"] "
                          f"(generator MLM, encoder replaced-token detection, decoder LM), got {c.target}")
    check_rtd_section(c, source)


@PRETRAINERS.register("metro")
class MetroPretrainer(ElectraPretrainer):
    """``discriminator`` is the whole encoder-decoder (a plain Model with the lm target); its encoder is
    the discriminator proper, under ``rtd_head``."""
    check_config = staticmethod(check_metro_config)
    backbone_config = staticmethod(seq2seq_config)
    exported_targets = ("lm",)

    def __init__(self, config: ModelConfig, load_generator: bool = True):
        super().__init__(config, load_generator)
        self.rtd_head = ReplacedTokenDetectionTarget(config, self.discriminator.embedding)
        init_weights(self.rtd_head)

    def forward(self, batch: dict) -> dict:
        out: Dict[str, torch.Tensor] = {}
        corrupted, rtd_labels = self.corrupt(batch, out)          # (b) generator loss into out
        seq2seq, seg = self.discriminator, batch["seg"]
        lengths = batch.get("seg_lengths")        # host-side (uer.layers.host_lengths): no mask sync
        memory = seq2seq.encode(corrupted, seg, lengths=lengths)    # (c)
        self.add_loss(out, self.rtd.disc_weight, self.rtd_head(memory, {"seg": seg, "rtd_labels": rtd_labels}))
        tgt_seg = batch.get("tgt_seg")                              # (d)
        hidden = seq2seq.decode(batch["tgt_in"], memory, seg, tgt_seg, src_lengths=lengths,
                                tgt_lengths=batch.get("tgt_seg_lengths"))
        lm = seq2seq.target(hidden, {"lm_labels": seq2seq_lm_labels(batch["tgt_out"], tgt_seg)})
        self.add_loss(out, self.rtd.decoder_weight, lm)
        return out

    def flops_per_token(self, seq_len: int, predicted_fraction: float = 0.15) -> float:
        return (super().flops_per_token(seq_len, predicted_fraction)
                + self.rtd_head.flops_per_token(self.config, predicted_fraction))

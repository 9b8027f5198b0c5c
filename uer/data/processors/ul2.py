"""UL2 instances (mixture of denoisers, uer.data.ul2_noising).  As for t5, preprocessing only cuts
the corpus into ``[CLS] chunk [SEP]`` pieces (one document per line; ``--full_sentences`` packs
across documents), one token shorter than t5's to leave room for the mode token; the denoiser, its
corruption and the mode token are drawn afresh every epoch by the collator.  ``--denoiser_weights``
sets the mixture (recorded in meta.json)."""

import numpy as np

from uer.data.processors.base import Instance, Packer
from uer.data.processors.mlm import MlmProcessor
from uer.data.noising import sentinel_ids
from uer.data.ul2_noising import UL2_DENOISERS, mode_token_ids, parse_denoiser_weights, ul2_sentinel_count
from uer.registry import PROCESSORS


@PROCESSORS.register("ul2")
class Ul2Processor(MlmProcessor):
    name = "ul2"
    fields = ()
    specials = ("cls", "sep", "pad", "unk")
    seq2seq = True
    options = {"denoiser_weights": None}

    def __init__(self, vocab, seq_length: int, denoiser_weights=None, **kwargs):
        super().__init__(vocab, seq_length, **kwargs)
        self.weights = parse_denoiser_weights(denoiser_weights)
        # Fail now, not at the first training step, when the vocabulary lacks sentinels or mode tokens.
        where = f"--data_processor ul2 with --seq_length {seq_length}"
        sentinel_ids(vocab, ul2_sentinel_count(seq_length - 3), where)
        mode_token_ids(vocab, where)

    def noising(self) -> dict:
        return {"kind": "ul2", "weights": [round(w, 12) for w in self.weights]}

    def meta(self) -> dict:
        return {"ul2_denoisers": [{"mode": m, "mean_noise_span_length": s, "noise_density": d, "weight": w}
                                  for (m, s, d), w in zip(UL2_DENOISERS, self.weights)]}

    def packer(self) -> Packer:
        separator = [self.sep_id] if self.full_sentences else []
        # seq_length - 3 between [CLS] and [SEP]: the mode token goes in front at collate time.
        return Packer(self.seq_length - 3, self._instance, prefix=[self.cls_id], suffix=[self.sep_id],
                      separator=separator, min_last=2)

    @staticmethod
    def _instance(src: np.ndarray) -> Instance:
        return src, ()

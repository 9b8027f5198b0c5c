"""T5 span-corruption instances.  As in UER-py (whose T5Dataset is its MlmDataset), preprocessing
only cuts the corpus into ``[CLS] chunk [SEP]`` pieces of ``seq_length`` tokens (one document per
line; ``--full_sentences`` packs across documents); the corruption itself — noise density 0.15,
mean span length 3, spans replaced by sentinels [extra_id_0], [extra_id_1] ... in order, the target
closed by a final sentinel — is drawn afresh every epoch by the collator (uer.data.noising.T5Noiser).
"""

import numpy as np

from uer.data.noising import T5_DEFAULTS, check_t5_options, sentinel_ids, t5_span_counts
from uer.data.processors.base import Instance, Packer
from uer.data.processors.mlm import MlmProcessor
from uer.registry import PROCESSORS


@PROCESSORS.register("t5")
class T5Processor(MlmProcessor):
    name = "t5"
    fields = ()
    specials = ("cls", "sep", "pad", "unk")
    seq2seq = True
    options = dict(T5_DEFAULTS)

    def __init__(self, vocab, seq_length: int, noise_density: float = 0.15,
                 mean_noise_span_length: float = 3.0, **kwargs):
        super().__init__(vocab, seq_length, **kwargs)
        check_t5_options(noise_density, mean_noise_span_length)
        self.noise_density, self.mean_noise_span_length = float(noise_density), float(mean_noise_span_length)
        # Fail now, not at the first training step, when the vocabulary lacks the sentinels.
        _, spans = t5_span_counts(seq_length - 2, self.noise_density, self.mean_noise_span_length)
        sentinel_ids(vocab, spans + 1, f"--data_processor t5 with --seq_length {seq_length}")

    def noising(self) -> dict:
        return {"kind": "t5", "noise_density": self.noise_density,
                "mean_noise_span_length": self.mean_noise_span_length}

    def packer(self) -> Packer:
        separator = [self.sep_id] if self.full_sentences else []
        # At least 2 tokens between [CLS] and [SEP]: one kept, one corrupted.
        return Packer(self.seq_length - 2, self._instance, prefix=[self.cls_id], suffix=[self.sep_id],
                      separator=separator, min_last=2)

    @staticmethod
    def _instance(src: np.ndarray) -> Instance:
        return src, ()

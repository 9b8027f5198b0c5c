"""GLM instances (autoregressive blank infilling, uer.data.glm_noising).  Preprocessing cuts the corpus
into ``[CLS] chunk [SEP]`` pieces of ``seq_length`` tokens (one document per line;
``--full_sentences`` packs across documents); the blanks, Part B's order and the 2D positions are drawn
afresh every epoch by the collator.  For a single transformer with the ``glm_pos`` embedding, the
``causal_with_prefix`` mask and the ``lm`` target (models/glm/base.json)."""

import numpy as np

from uer.data.glm_noising import GLM_DEFAULTS, check_glm_options, piece_token_ids
from uer.data.processors.base import Instance, Packer
from uer.data.processors.mlm import MlmProcessor
from uer.registry import PROCESSORS


@PROCESSORS.register("glm")
class GlmProcessor(MlmProcessor):
    name = "glm"
    fields = ()
    options = dict(GLM_DEFAULTS)

    def __init__(self, vocab, seq_length: int, noise_density: float = 0.15, poisson_lambda: float = 3.0,
                 **kwargs):
        super().__init__(vocab, seq_length, **kwargs)
        check_glm_options(noise_density, poisson_lambda)
        self.noise_density, self.poisson_lambda = float(noise_density), float(poisson_lambda)
        piece_token_ids(vocab, "--data_processor glm")   # fail now when [sop] / [eop] are missing

    def noising(self) -> dict:
        return {"kind": "glm", "noise_density": self.noise_density, "poisson_lambda": self.poisson_lambda}

    def packer(self) -> Packer:
        separator = [self.sep_id] if self.full_sentences else []
        return Packer(self.seq_length - 2, self._instance, prefix=[self.cls_id], suffix=[self.sep_id],
                      separator=separator, min_last=2)

    @staticmethod
    def _instance(src: np.ndarray) -> Instance:
        return src, ()

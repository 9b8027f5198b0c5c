"""UL2's mixture of denoisers (Tay et al. 2022, "Unifying Language Learning Paradigms"), drawn in the
training collator like T5's span corruption, of which it is a mixture:

* R-denoisers (regular span corruption): mean span 3 and 8, 15% of the tokens;
* X-denoisers (extreme): mean span 3 and 8 at 50%, mean span 64 at 15% and 50%;
* the S-denoiser (sequential, prefix LM): the text cut at a uniformly drawn point, the encoder gets
  the prefix, the decoder predicts the continuation.

Each instance draws one denoiser by the mixture weights (default: uniform over the seven, as the
paper's appendix code samples its tasks when ``rates`` is None) and its encoder input starts with
the denoiser's mode token — [NLU] for R, [NLG] for X, [S2S] for S — then ``[CLS] ... [SEP]``.  The
span corruption is T5's (uer.data.noising): noise and kept tokens cut into the same number of random
runs, each noise span replaced by the next [extra_id_N] sentinel.
"""

from typing import List, Optional, Sequence, Tuple

import numpy as np

from uer.data.noising import instance_rng, sentinel_ids, span_corrupt, t5_noise_mask, t5_span_counts
from uer.errors import ConfigError, DataError

STREAM_UL2 = 13
# (mode, mean span length, noise density); the S-denoiser has neither.
UL2_DENOISERS: Tuple[Tuple[str, Optional[float], Optional[float]], ...] = (
    ("R", 3.0, 0.15), ("R", 8.0, 0.15),
    ("X", 3.0, 0.5), ("X", 8.0, 0.5), ("X", 64.0, 0.15), ("X", 64.0, 0.5),
    ("S", None, None))
MODES = ("R", "X", "S")
MODE_TOKENS = {"R": "[NLU]", "X": "[NLG]", "S": "[S2S]"}


def parse_denoiser_weights(spec) -> List[float]:
    """Mixture weights of the seven denoisers from ``--denoiser_weights``: seven numbers (in the
    order R3 R8 X3 X8 X64/15% X64/50% S) or three (R, X, S, each split evenly among that mode's
    denoisers), comma-separated or a list; normalised to sum to 1.  None: uniform."""
    if spec is None:
        values = [1.0] * len(UL2_DENOISERS)
    else:
        parts = spec.split(",") if isinstance(spec, str) else list(spec)
        try:
            values = [float(v) for v in parts]
        except ValueError:
            raise ConfigError(f"--denoiser_weights {spec!r}: expected comma-separated numbers, e.g. 1,1,1 "
                              "(R, X, S) or 1,1,1,1,1,1,1 (R3 R8 X3 X8 X64/15% X64/50% S)") from None
        if len(values) == len(MODES):
            per_mode = {m: sum(1 for d in UL2_DENOISERS if d[0] == m) for m in MODES}
            values = [values[MODES.index(d[0])] / per_mode[d[0]] for d in UL2_DENOISERS]
        if len(values) != len(UL2_DENOISERS):
            raise ConfigError(f"--denoiser_weights {spec!r}: give 3 weights (R, X, S) or 7 (R3 R8 X3 X8 "
                              f"X64/15% X64/50% S), got {len(values)}")
    if any(v < 0 or not np.isfinite(v) for v in values) or sum(values) <= 0:
        raise ConfigError(f"--denoiser_weights {spec!r}: weights must be finite, non-negative and not all zero")
    total = sum(values)
    return [v / total for v in values]


def mode_token_ids(vocab, where: str) -> dict:
    """The ids of [NLU] / [NLG] / [S2S]; a vocabulary without them is refused with the fix (they are
    not mapped onto [unused*] rows: a model would then answer to prompts it was never shown)."""
    missing = [t for t in MODE_TOKENS.values() if t not in vocab]
    if missing:
        raise ConfigError(f"{where}: UL2 prepends a mode token to every encoder input ([NLU] for the R-, [NLG] "
                          f"for the X-, [S2S] for the S-denoiser), but the vocabulary {vocab.path or ''} lacks "
                          f"{', '.join(missing)}; append them to the vocabulary file (one per line, after the "
                          "[extra_id_N] sentinels) and preprocess again")
    return {mode: int(vocab.token_to_id(token)) for mode, token in MODE_TOKENS.items()}


def ul2_sentinel_count(body_length: int) -> int:
    """Sentinels the densest denoiser needs on ``body_length`` corruptible tokens, the final one included."""
    return 1 + max(t5_span_counts(max(body_length, 2), density, span)[1]
                   for _, span, density in UL2_DENOISERS if span is not None)


class Ul2Noiser:
    """Collate-time UL2 denoising of ``[CLS] tokens [SEP]`` instances: the encoder gets
    ``mode [CLS] corrupted-or-prefix [SEP]``, the decoder predicts ``S0 span0 ... Sk [SEP]`` (R, X)
    or ``continuation [SEP]`` (S)."""

    def __init__(self, vocab, seq_length: int, seed: int, weights: Optional[Sequence[float]] = None,
                 where: str = "the ul2 processor"):
        self.weights = np.asarray(parse_denoiser_weights(weights), dtype=np.float64)
        self.seed = seed
        # Instances hold at most seq_length - 3 corruptible tokens (room for the mode token).
        self.sentinels = sentinel_ids(vocab, ul2_sentinel_count(seq_length - 3), where)
        self.modes = mode_token_ids(vocab, where)
        self.sep_id = int(vocab.sep_id)

    def choose(self, rng: np.random.Generator) -> int:
        """The index in UL2_DENOISERS of the denoiser an instance gets (its first draw)."""
        return int(rng.choice(len(UL2_DENOISERS), p=self.weights))

    def denoise(self, seq: np.ndarray, index: int, epoch: int) -> Tuple[int, np.ndarray, np.ndarray]:
        """(denoiser index, encoder input, decoder target) of one instance."""
        body = np.asarray(seq[1:-1], dtype=np.int64)
        if len(body) < 2:
            raise DataError(f"instance {index} has {len(body)} tokens between [CLS] and [SEP]; UL2's denoisers "
                            "need at least 2 — rebuild the dataset with preprocess.py")
        rng = instance_rng(self.seed, epoch, STREAM_UL2, index)
        choice = self.choose(rng)
        mode, span, density = UL2_DENOISERS[choice]
        if span is None:     # S: prefix LM, the split point uniform over 1 .. n - 1 kept tokens
            split = int(rng.integers(1, len(body)))
            inputs, targets = body[:split], body[split:]
        else:
            noise = t5_noise_mask(len(body), density, span, rng)
            inputs, targets = span_corrupt(body, noise, self.sentinels)
        src = np.concatenate([[self.modes[mode]], seq[:1], inputs, seq[-1:]]).astype(np.int64)
        return choice, src, np.concatenate([targets, [self.sep_id]]).astype(np.int64)

    def __call__(self, seqs: List[np.ndarray], tgts, indices: Sequence[int], epoch: int):
        srcs, outs = [], []
        for seq, index in zip(seqs, indices):
            _, src, tgt = self.denoise(seq, index, epoch)
            srcs.append(src)
            outs.append(tgt)
        return srcs, outs

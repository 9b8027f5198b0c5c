"""GLM's autoregressive blank infilling (Du et al. 2022, "GLM: General Language Model Pretraining with
Autoregressive Blank Infilling"), drawn in the training collator for a single (decoder-only) transformer.

Of an instance ``[CLS] tokens [SEP]`` (n tokens between the two):

* spans with Poisson(λ=3) lengths (zero excluded: a blank holds at least one token, as GLM draws
  lengths from 1 up) are drawn until they cover round(0.15 n) tokens, the last one cut to fit, and
  placed at random without touching;
* Part A is the instance with each span replaced by one [MASK];
* Part B is the spans in a random order, each as ``[sop] span`` inputs whose targets are
  ``span [eop]``;
* 2D positions: position 1 is the position in Part A (for a Part B token, that of its span's
  [MASK]); position 2 is 0 in Part A and 1 .. len + 1 along each Part B span;
* attention: Part A is segment 1 and Part B segment 2, so the ``causal_with_prefix`` mask gives
  exactly GLM's: bidirectional within Part A, causal within Part B, Part B sees all of Part A,
  Part A never sees Part B.

An instance becomes n + 2 + 2k tokens long (k spans, about 1.1 x at 15%), while positions stay below
n + 2: the position tables need only the dataset's seq_length.
"""

from typing import Dict, List, Sequence, Tuple

import numpy as np

from uer.data.noising import instance_rng, place_spans
from uer.errors import ConfigError, DataError

STREAM_GLM = 14
GLM_DEFAULTS = {"noise_density": 0.15, "poisson_lambda": 3.0}
# Start / end of a Part B span: GLM's own vocabulary names, or bracketed ones for WordPiece files.
START_FORMS = ("<|startofpiece|>", "[sop]")
END_FORMS = ("<|endofpiece|>", "[eop]")


def check_glm_options(noise_density: float, poisson_lambda: float) -> None:
    if not 0.0 < noise_density < 1.0:
        raise ConfigError(f"--noise_density {noise_density} must be between 0 and 1 (GLM: 0.15)")
    if poisson_lambda <= 0.0:
        raise ConfigError(f"--poisson_lambda {poisson_lambda} must be positive (GLM: 3)")


def piece_token_ids(vocab, where: str) -> Tuple[int, int]:
    """The ids of the Part B start and end tokens; a vocabulary without them is refused with the fix."""
    found = []
    for forms in (START_FORMS, END_FORMS):
        token = next((t for t in forms if t in vocab), None)
        if token is None:
            raise ConfigError(f"{where}: GLM opens every Part B span with a start token and closes its targets "
                              f"with an end token, but the vocabulary {vocab.path or ''} has neither "
                              f"{' nor '.join(forms)}; append [sop] and [eop] to the vocabulary file (one per "
                              "line) and preprocess again")
        found.append(int(vocab.token_to_id(token)))
    return found[0], found[1]


def positive_poisson_lengths(budget: int, lam: float, rng: np.random.Generator) -> List[int]:
    """Poisson(lam) lengths conditioned on >= 1, drawn until they cover ``budget`` tokens (the last one
    cut so that they cover exactly ``budget``)."""
    lengths: List[int] = []
    covered = 0
    while covered < budget:
        n = int(rng.poisson(lam))
        if n == 0:
            continue
        n = min(n, budget - covered)
        lengths.append(n)
        covered += n
    return lengths


def glm_spans(length: int, density: float, lam: float, rng: np.random.Generator) -> List[Tuple[int, int]]:
    """Spans (start, length) in sequence order over ``length`` tokens covering round(length * density)
    of them (at least 1, at most length - 1), at least one kept token between two spans."""
    budget = min(max(int(round(length * density)), 1), length - 1)
    lengths = positive_poisson_lengths(budget, lam, rng)
    kept = length - budget
    while len(lengths) - 1 > kept:      # only for tiny lengths: fewer, so that they fit apart
        kept += lengths.pop()
    return place_spans(lengths, kept, rng)


def blank_infilling(seq: np.ndarray, spans: List[Tuple[int, int]], order: Sequence[int], mask_id: int,
                    sop_id: int, eop_id: int) -> Dict[str, np.ndarray]:
    """One GLM instance from ``seq`` = ``[CLS] body [SEP]`` and ``spans`` over the body, Part B in
    ``order`` (indices into ``spans``): ``src`` (Part A then Part B inputs), ``lm_labels`` (-100 on
    Part A), ``positions`` (2, len) and ``seg_a_len`` (Part A's length)."""
    part_a: List[int] = [int(seq[0])]
    mask_at: List[int] = []
    pos = 0
    body = seq[1:-1]
    for start, n in spans:
        part_a.extend(int(t) for t in body[pos:start])
        mask_at.append(len(part_a))
        part_a.append(mask_id)
        pos = start + n
    part_a.extend(int(t) for t in body[pos:])
    part_a.append(int(seq[-1]))
    inputs, labels, pos_1, pos_2 = list(part_a), [-100] * len(part_a), list(range(len(part_a))), [0] * len(part_a)
    for j in order:
        start, n = spans[j]
        span = [int(t) for t in body[start:start + n]]
        inputs.extend([sop_id, *span])
        labels.extend([*span, eop_id])
        pos_1.extend([mask_at[j]] * (n + 1))
        pos_2.extend(range(1, n + 2))
    return {"src": np.asarray(inputs, np.int64), "lm_labels": np.asarray(labels, np.int64),
            "positions": np.asarray([pos_1, pos_2], np.int64), "seg_a_len": len(part_a)}


class GlmNoiser:
    """Collate-time blank infilling.  Returns ``(srcs, None, extras)``: per instance the fields the
    collator adds to it (``seg_a_len``, ``lm_labels``, ``positions``)."""

    def __init__(self, vocab, seed: int, noise_density: float = 0.15, poisson_lambda: float = 3.0,
                 where: str = "the glm processor"):
        check_glm_options(noise_density, poisson_lambda)
        self.density, self.lam, self.seed = float(noise_density), float(poisson_lambda), seed
        self.mask_id = int(vocab.mask_id)
        self.sop_id, self.eop_id = piece_token_ids(vocab, where)

    def instance(self, seq: np.ndarray, index: int, epoch: int) -> Dict[str, np.ndarray]:
        seq = np.asarray(seq, dtype=np.int64)
        if len(seq) < 4:
            raise DataError(f"instance {index} has {len(seq) - 2} tokens between [CLS] and [SEP]; blank "
                            "infilling needs at least 2 — rebuild the dataset with preprocess.py")
        rng = instance_rng(self.seed, epoch, STREAM_GLM, index)
        spans = glm_spans(len(seq) - 2, self.density, self.lam, rng)
        return blank_infilling(seq, spans, rng.permutation(len(spans)), self.mask_id, self.sop_id, self.eop_id)

    def __call__(self, seqs: List[np.ndarray], tgts, indices: Sequence[int], epoch: int):
        built = [self.instance(seq, index, epoch) for seq, index in zip(seqs, indices)]
        return [b["src"] for b in built], None, [{k: v for k, v in b.items() if k != "src"} for b in built]

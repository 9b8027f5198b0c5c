"""The denoising objectives of encoder-decoder pretraining that are drawn afresh every epoch, in the
training collator (like masking, see uer.data.masking): T5 span corruption and BART text infilling
(UL2's mixture in uer.data.ul2_noising and GLM's blank infilling in uer.data.glm_noising build on them).

Each instance gets its own generator seeded by (seed, epoch, stream, instance index), so an
instance's corruption depends on nothing else (batch, workers, ranks, resume).  The work is a few
numpy operations per instance; spans are variable-length edits of the sequence, which do not
vectorise over a padded batch without the bookkeeping costing more than it saves.

Sequences here are ``[CLS] tokens [SEP]`` as the seq2seq processors store them; only the tokens
between the two are corrupted.
"""

from typing import List, Sequence, Tuple

import numpy as np

from uer.errors import ConfigError, DataError

STREAM_T5, STREAM_BART = 11, 12
SENTINEL_FORMS = ("[extra_id_{}]", "<extra_id_{}>")
T5_DEFAULTS = {"noise_density": 0.15, "mean_noise_span_length": 3.0}
BART_DEFAULTS = {"infilling_ratio": 0.3, "poisson_lambda": 3.0}


def instance_rng(seed: int, epoch: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, epoch & 0xFFFFFFFF, stream, int(index)])


def random_segmentation(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """``parts`` positive integers summing to ``total``, uniform over all such compositions."""
    if parts <= 1:
        return np.array([total], dtype=np.int64)
    cuts = np.sort(rng.choice(np.arange(1, total), size=parts - 1, replace=False))
    return np.diff(np.concatenate([[0], cuts, [total]])).astype(np.int64)


# -- T5 span corruption ---------------------------------------------------------------------------
def t5_span_counts(length: int, noise_density: float, mean_span: float) -> Tuple[int, int]:
    """(noise tokens, noise spans) of a sequence of ``length`` tokens, as T5 computes them:
    round(length * density) noise tokens (at least 1, at most length - 1) in
    round(noise / mean_span) spans (at least 1)."""
    noise = min(max(int(round(length * noise_density)), 1), length - 1)
    spans = max(int(round(noise / mean_span)), 1)
    return noise, min(spans, noise, length - noise)


def t5_noise_mask(length: int, noise_density: float, mean_span: float,
                  rng: np.random.Generator) -> np.ndarray:
    """T5's random_spans_noise_mask: noise and kept tokens each cut into the same number of
    random, non-empty runs, interleaved kept-first (so spans never touch)."""
    noise, spans = t5_span_counts(length, noise_density, mean_span)
    noise_lengths = random_segmentation(noise, spans, rng)
    keep_lengths = random_segmentation(length - noise, spans, rng)
    runs = np.stack([keep_lengths, noise_lengths], axis=1).reshape(-1)
    is_noise = np.tile([False, True], spans)
    return np.repeat(is_noise, runs)


def span_corrupt(tokens: np.ndarray, noise: np.ndarray, sentinels: Sequence[int]
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """(inputs, targets): each noise span of ``tokens`` replaced by the next sentinel in the
    inputs; the targets are sentinel_i + span_i for every span, then one final sentinel."""
    starts = noise & ~np.concatenate([[False], noise[:-1]])
    span_id = np.cumsum(starts) - 1                          # index of the span a noise token is in
    sentinel_ids = np.asarray(sentinels, dtype=np.int64)
    inputs = np.where(starts, sentinel_ids[np.maximum(span_id, 0)], tokens)[~noise | starts]
    targets = []
    for i, (s, e) in enumerate(_runs(noise)):
        targets.append(sentinel_ids[i])
        targets.extend(tokens[s:e])
    targets.append(sentinel_ids[int(starts.sum())])         # the final sentinel
    return inputs.astype(np.int64), np.asarray(targets, dtype=np.int64)


def _runs(flags: np.ndarray) -> List[Tuple[int, int]]:
    """(start, end) of the runs of True in ``flags``."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def sentinel_ids(vocab, count: int, where: str) -> List[int]:
    """The ids of sentinels 0..count-1 ([extra_id_N] as in UER-py's T5 vocabularies, or
    <extra_id_N> as in Hugging Face's T5 SentencePiece models), in order."""
    for form in SENTINEL_FORMS:
        if form.format(0) in vocab:
            missing = [form.format(i) for i in range(count) if form.format(i) not in vocab]
            if missing:
                raise ConfigError(f"{where}: the vocabulary {vocab.path or ''} has sentinels up to "
                                  f"{missing[0]} missing, but T5 span corruption of these sequences needs "
                                  f"{count} ({form.format(0)} .. {form.format(count - 1)}); append the missing "
                                  "ones to the vocabulary (one per line), or shorten --seq_length")
            return [int(vocab.token_to_id(form.format(i))) for i in range(count)]
    raise ConfigError(f"{where}: T5 span corruption needs sentinel tokens [extra_id_0] .. "
                      f"[extra_id_{count - 1}] in the vocabulary {vocab.path or ''}, which has none; append them "
                      "(one per line, as UER-py's models/google_zh_with_sentinel_vocab.txt does) and "
                      "preprocess again")


class T5Noiser:
    """Collate-time T5 span corruption of ``[CLS] tokens [SEP]`` instances: the encoder gets
    ``[CLS] corrupted [SEP]``, the decoder predicts ``S0 span0 S1 span1 ... Sk [SEP]``."""

    def __init__(self, vocab, seq_length: int, seed: int, noise_density: float = 0.15,
                 mean_noise_span_length: float = 3.0, where: str = "the t5 processor"):
        check_t5_options(noise_density, mean_noise_span_length)
        self.noise_density, self.mean_span, self.seed = noise_density, mean_noise_span_length, seed
        # Sequences hold at most seq_length - 2 corruptible tokens; one more sentinel for the end.
        _, spans = t5_span_counts(max(seq_length - 2, 2), noise_density, mean_noise_span_length)
        self.sentinels = sentinel_ids(vocab, spans + 1, where)
        self.sep_id = int(vocab.sep_id)

    def __call__(self, seqs: List[np.ndarray], tgts, indices: Sequence[int], epoch: int):
        srcs, outs = [], []
        for seq, index in zip(seqs, indices):
            body = np.asarray(seq[1:-1], dtype=np.int64)
            if len(body) < 2:
                raise DataError(f"instance {index} has {len(body)} tokens between [CLS] and [SEP]; span "
                                "corruption needs at least 2 — rebuild the dataset with preprocess.py")
            rng = instance_rng(self.seed, epoch, STREAM_T5, index)
            noise = t5_noise_mask(len(body), self.noise_density, self.mean_span, rng)
            inputs, targets = span_corrupt(body, noise, self.sentinels)
            srcs.append(np.concatenate([seq[:1], inputs, seq[-1:]]))
            outs.append(np.concatenate([targets, [self.sep_id]]))
        return srcs, outs


def check_t5_options(noise_density: float, mean_span: float) -> None:
    if not 0.0 < noise_density < 1.0:
        raise ConfigError(f"--noise_density {noise_density} must be between 0 and 1 (T5: 0.15)")
    if mean_span < 1.0:
        raise ConfigError(f"--mean_noise_span_length {mean_span} must be >= 1 (T5: 3)")


# -- BART text infilling ---------------------------------------------------------------------------
def poisson_span_lengths(budget: int, lam: float, rng: np.random.Generator) -> List[int]:
    """Poisson(lam) lengths (zeros included) drawn until they cover ``budget`` tokens; the last one
    is cut so that they cover exactly ``budget``."""
    lengths: List[int] = []
    covered = 0
    while covered < budget:
        n = min(int(rng.poisson(lam)), budget - covered)
        lengths.append(n)
        covered += n
    return lengths


def infilling_spans(length: int, ratio: float, lam: float, rng: np.random.Generator
                    ) -> List[Tuple[int, int]]:
    """Spans (start, length) of BART's text infilling over ``length`` tokens: Poisson(lam) span
    lengths, zero-length ones included (they insert a mask), drawn until they cover
    round(length * ratio) tokens (the last one cut to fit); spans are placed uniformly at random
    without touching one another."""
    lengths = poisson_span_lengths(int(round(length * ratio)), lam, rng)
    covered = sum(lengths)
    # Every span needs a kept token between it and the next; zero-length spans beyond what fits go.
    kept = length - covered
    while lengths and len(lengths) - 1 > kept:
        if 0 in lengths:
            lengths.remove(0)
        else:
            kept += lengths.pop()
    return place_spans(lengths, kept, rng)


def place_spans(lengths: List[int], kept: int, rng: np.random.Generator) -> List[Tuple[int, int]]:
    """Spans (start, length) of the given ``lengths`` (shuffled) placed uniformly at random among
    ``kept`` unchanged tokens, with at least one kept token between consecutive spans
    (``len(lengths) - 1 <= kept``); shared by BART's text infilling and GLM's blanks."""
    if not lengths:
        return []
    order = rng.permutation(len(lengths))
    lengths = [lengths[i] for i in order]
    k = len(lengths)
    # kept tokens split into k + 1 gaps: the inner k - 1 at least 1, the two ends at least 0.
    extra = kept - (k - 1)
    gaps = random_segmentation(extra + k + 1, k + 1, rng) - 1
    gaps[1:-1] += 1
    spans, pos = [], 0
    for gap, n in zip(gaps[:-1], lengths):
        pos += int(gap)
        spans.append((pos, n))
        pos += n
    return spans


def infill(tokens: np.ndarray, spans: List[Tuple[int, int]], mask_id: int) -> np.ndarray:
    """``tokens`` with every span replaced by one mask (a zero-length span inserts one)."""
    out, pos = [], 0
    for start, n in spans:
        out.extend(tokens[pos:start])
        out.append(mask_id)
        pos = start + n
    out.extend(tokens[pos:])
    return np.asarray(out, dtype=np.int64)


class BartNoiser:
    """Collate-time text infilling of the (already sentence-permuted) encoder input; the decoder's
    target, the original text, comes from the dataset's tgt stream."""

    def __init__(self, vocab, seed: int, infilling_ratio: float = 0.3, poisson_lambda: float = 3.0):
        check_bart_options(infilling_ratio, poisson_lambda)
        self.ratio, self.lam, self.seed = infilling_ratio, poisson_lambda, seed
        self.mask_id = int(vocab.mask_id)

    def __call__(self, seqs: List[np.ndarray], tgts, indices: Sequence[int], epoch: int):
        srcs = []
        for seq, index in zip(seqs, indices):
            body = np.asarray(seq[1:-1], dtype=np.int64)
            rng = instance_rng(self.seed, epoch, STREAM_BART, index)
            spans = infilling_spans(len(body), self.ratio, self.lam, rng)
            srcs.append(np.concatenate([seq[:1], infill(body, spans, self.mask_id), seq[-1:]]))
        return srcs, tgts


def check_bart_options(ratio: float, lam: float) -> None:
    if not 0.0 <= ratio < 1.0:
        raise ConfigError(f"--infilling_ratio {ratio} must be in [0, 1) (BART: 0.3)")
    if lam <= 0.0:
        raise ConfigError(f"--poisson_lambda {lam} must be positive (BART: 3)")


def build_noiser(meta: dict, vocab, seed: int):
    """The collate-time noiser a dataset asks for in its meta.json ("noising"), or None."""
    noising = meta.get("noising")
    if not noising:
        return None
    kind = noising.get("kind")
    params = {k: v for k, v in noising.items() if k != "kind"}
    if kind == "t5":
        return T5Noiser(vocab, int(meta["seq_length"]), seed, where=f"dataset {meta.get('corpus_path', '')}",
                        **params)
    if kind == "bart":
        return BartNoiser(vocab, seed, **params)
    if kind == "ul2":
        from uer.data.ul2_noising import Ul2Noiser   # imports this module: not at the top
        return Ul2Noiser(vocab, int(meta["seq_length"]), seed, where=f"dataset {meta.get('corpus_path', '')}",
                         **params)
    if kind == "glm":
        from uer.data.glm_noising import GlmNoiser
        return GlmNoiser(vocab, seed, where=f"dataset {meta.get('corpus_path', '')}", **params)
    raise DataError(f"the dataset's meta.json asks for noising {kind!r}, which this uer does not know "
                    "(t5, bart, ul2, glm); rebuild it with this version's preprocess.py")


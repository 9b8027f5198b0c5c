"""What every data processor shares: the instance shape, the processor interface, pair truncation,
Google BERT's chunking loop, and the sequential packer used for cross-document packing.

A processor turns a *block* of documents into instances.  The preprocessing pipeline
(:mod:`uer.data.preprocess`) calls it in worker processes, one block at a time, so a processor must
be picklable and must take all of its randomness from the ``rng`` it is handed (seeded by
``(seed, block_index, dup_round)``): that is what makes the output independent of the number of
workers.

Instance conventions relied on by the training collator:

* one token stream ``src`` of vocabulary ids that already contains ``[CLS]``/``[SEP]``;
  encoder-decoder processors (``seq2seq``) may add a ``tgt`` stream, the tokens the decoder predicts
  (ending in ``[SEP]``, without a start token: the collator prepends ``[CLS]`` for the decoder
  input); an instance is then ``({"src": ..., "tgt": ...}, fields)``;
* integer fields in the order of ``Processor.fields`` (e.g. ``seg_a_len`` = length of the first
  segment including its ``[CLS]`` and ``[SEP]``, and ``label``).
"""

from typing import Callable, ClassVar, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from uer.errors import ConfigError

# One document as read from the corpus: (line number of its first line, its non-blank lines).
Doc = Tuple[int, List[str]]
# One instance: the src token ids (or a dict of every stream's ids) and its integer fields (in the
# order of Processor.fields).
Instance = Tuple[Union[np.ndarray, Dict[str, np.ndarray]], Tuple[int, ...]]

ALL_SPECIALS = ("cls", "sep", "pad", "unk", "mask")
# Below this even one token of text per segment does not fit beside [CLS]/[SEP]/[SEP] comfortably;
# such a length is almost certainly a typo (e.g. 12 vs 128), so refuse it early.
MIN_SEQ_LENGTH = 8


class Processor:
    """Base class of the data processors registered in ``uer.registry.PROCESSORS``.

    Subclasses set ``name``, ``fields``, ``corpus_format`` and ``specials`` and implement
    :meth:`tokenize` plus either :meth:`build` (instances made independently per block) or, when
    :attr:`sequential` is true, :meth:`segments` + :meth:`packer` (the main process packs token
    segments across block boundaries, which can only be done in corpus order).
    """

    name: ClassVar[str] = ""
    fields: ClassVar[Tuple[str, ...]] = ()
    # Values of the "label" field (NSP/SOP: 2), checked when a dataset is opened; 0: not fixed.
    label_classes: ClassVar[int] = 0
    # Tokens an instance may hold beyond seq_length (lm: one, for the shifted target).
    extra_tokens: ClassVar[int] = 0
    # "documents": one sentence per line, documents separated by blank lines;
    # "lines": one document (or labelled example) per line.
    corpus_format: ClassVar[str] = "lines"
    specials: ClassVar[Tuple[str, ...]] = ALL_SPECIALS
    # The token streams of an instance; seq2seq: the instances feed an encoder-decoder model
    # (decoder fields from a tgt stream, or from the collate-time noising of ``noising()``).
    streams: ClassVar[Tuple[str, ...]] = ("src",)
    seq2seq: ClassVar[bool] = False
    # Extra keyword options of the constructor (preprocess.py flags), with their defaults.
    options: ClassVar[Dict[str, object]] = {}

    def __init__(self, vocab, seq_length: int, short_seq_prob: float = 0.1,
                 full_sentences: bool = False, corpus_path: str = "<corpus>"):
        if seq_length < MIN_SEQ_LENGTH:
            raise ConfigError(f"--seq_length {seq_length} is too small for the {self.name} processor; "
                              f"use at least {MIN_SEQ_LENGTH} (typical values: 128, 512)")
        if not 0.0 <= short_seq_prob <= 1.0:
            raise ConfigError(f"--short_seq_prob {short_seq_prob} must be between 0 and 1")
        vocab.require(self.specials, purpose=f"the {self.name} processor")
        self.seq_length = seq_length
        self.short_seq_prob = short_seq_prob
        self.full_sentences = full_sentences
        self.corpus_path = corpus_path
        # Plain ints only: the processor is pickled to every worker, the vocabulary is not needed.
        self.cls_id = int(vocab.cls_id)
        self.sep_id = int(vocab.sep_id)

    @property
    def sequential(self) -> bool:
        """True when instances are packed across documents in the main process."""
        return False

    def noising(self) -> Optional[dict]:
        """The collate-time noising the dataset asks for, recorded in meta.json ("noising", read by
        ``uer.data.noising.build_noiser``); None: none."""
        return None

    def meta(self) -> dict:
        """Processor-specific keys for meta.json (e.g. tgt_seq_length, the target tokenizer)."""
        return {}

    def tokenize(self, docs: List[Doc], tokenizer) -> list:
        """Turn a block of raw documents into token ids (done once per block, before dup rounds)."""
        raise NotImplementedError

    def build(self, tokenized: list, rng: np.random.Generator) -> List[Instance]:
        """Instances of one block for one dup round."""
        raise NotImplementedError

    def segments(self, tokenized: list) -> List[np.ndarray]:
        """Token segments to be packed in corpus order (sequential processors only)."""
        raise NotImplementedError

    def packer(self) -> "Packer":
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------------------
    def pair(self, tokens_a: Sequence[int], tokens_b: Sequence[int], label: int) -> Instance:
        """[CLS] A [SEP] B [SEP] with fields (seg_a_len, label)."""
        src = np.array([self.cls_id, *tokens_a, self.sep_id, *tokens_b, self.sep_id], dtype=np.int32)
        return src, (len(tokens_a) + 2, int(label))


class Tokenized(list):
    """What :meth:`Processor.tokenize` returns when it sets examples aside: the list, plus
    ``skipped`` {reason: count}; the pipeline sums the counts into meta.json ("skipped") and reports
    them, so a dropped example is never silent."""

    def __init__(self, items=()):
        super().__init__(items)
        self.skipped: Dict[str, int] = {}

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def encode_ids(tokenizer, text: str) -> List[int]:
    return list(map(int, tokenizer.encode(text)))    # plain ints whatever the tokenizer returns (numpy ints)


def truncate_seq_pair(tokens_a: List[int], tokens_b: List[int], max_tokens: int,
                      rng: Optional[np.random.Generator] = None) -> Tuple[List[int], List[int]]:
    """Google BERT's truncate_seq_pair: remove one token at a time from the longer side (B on a
    tie) until both fit, from the front or the back at random (``rng``) or always from the back
    (``rng=None``, for labelled data where the start of the text matters most).

    Works on counts and slices once instead of deleting from list fronts one by one, which is
    quadratic for long sentences; the outcome is the same as the token-by-token loop.
    """
    excess = len(tokens_a) + len(tokens_b) - max_tokens
    if excess <= 0:
        return tokens_a, tokens_b
    front_coins = rng.random(excess) < 0.5 if rng is not None else np.zeros(excess, dtype=bool)
    len_a, len_b = len(tokens_a), len(tokens_b)
    cut = {"a": [0, 0], "b": [0, 0]}   # tokens removed from [front, back]
    for from_front in front_coins:
        side = "a" if len_a > len_b else "b"
        cut[side][0 if from_front else 1] += 1
        if side == "a":
            len_a -= 1
        else:
            len_b -= 1
    (fa, ba), (fb, bb) = cut["a"], cut["b"]
    return tokens_a[fa:len(tokens_a) - ba], tokens_b[fb:len(tokens_b) - bb]


def target_length(max_tokens: int, short_seq_prob: float, rng: np.random.Generator) -> int:
    """Google BERT draws, once per document, a shorter target length with ``short_seq_prob`` so the
    model also sees short sequences (fine-tuning inputs are often short)."""
    if rng.random() < short_seq_prob:
        return int(rng.integers(2, max_tokens + 1))
    return max_tokens


def walk_chunks(document: List[List[int]], target: int,
                emit: Callable[[List[List[int]]], int]) -> None:
    """Google BERT's create_instances_from_document loop: collect whole sentences until the chunk
    reaches ``target`` tokens or the document ends, then hand the chunk to ``emit``.  ``emit``
    returns how many trailing sentences of the chunk it did not use (NSP with a random B leaves
    them unused); those are put back so the next chunk starts with them."""
    chunk: List[List[int]] = []
    length, i = 0, 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            i -= emit(chunk)
            chunk, length = [], 0
        i += 1


def flatten(sentences: Sequence[Sequence[int]]) -> List[int]:
    return [t for sentence in sentences for t in sentence]


class Packer:
    """Concatenates token segments in order and cuts them into fixed-size chunks, carrying the
    remainder over to the next segment (and across blocks).

    ``separator`` tokens go *between* consecutive segments; each chunk is wrapped in ``prefix`` /
    ``suffix``; the last, partial chunk is kept only if it has at least ``min_last`` tokens.
    ``make`` turns a wrapped chunk into an instance (it knows the processor's fields).
    """

    def __init__(self, chunk_len: int, make: Callable[[np.ndarray], Instance],
                 prefix: Sequence[int] = (), suffix: Sequence[int] = (),
                 separator: Sequence[int] = (), min_last: int = 1):
        self.chunk_len = chunk_len
        self.make = make
        self.prefix = np.asarray(prefix, dtype=np.int32)
        self.suffix = np.asarray(suffix, dtype=np.int32)
        self.separator = np.asarray(separator, dtype=np.int32)
        self.min_last = min_last
        self._parts: List[np.ndarray] = []
        self._pending = 0
        self._started = False
        self._skip = 0

    def skip(self, tokens: int) -> "Packer":
        """Drop the first ``tokens`` tokens of the stream: with --dup_factor N, round r skips
        r * chunk_len / N tokens so its chunks start at other places than round 0's (otherwise the
        duplicated data would be byte-identical copies)."""
        self._skip = tokens
        return self

    def feed(self, segment: np.ndarray) -> List[Instance]:
        """Add one segment; return the chunks it completed (possibly none)."""
        if self._started and self.separator.size:
            self._append(self.separator)
        self._started = True
        segment = np.asarray(segment, dtype=np.int32)
        if self._skip:
            dropped = min(self._skip, len(segment))
            segment, self._skip = segment[dropped:], self._skip - dropped
        self._append(segment)
        if self._pending < self.chunk_len:
            return []
        stream = np.concatenate(self._parts)
        full = len(stream) // self.chunk_len * self.chunk_len
        out = [self._wrap(stream[start:start + self.chunk_len]) for start in range(0, full, self.chunk_len)]
        rest = stream[full:]
        self._parts, self._pending = [rest], len(rest)
        return out

    def flush(self) -> List[Instance]:
        """The last, partial chunk at the end of the corpus (if long enough)."""
        out = [self._wrap(np.concatenate(self._parts))] if self._pending >= max(self.min_last, 1) else []
        self._parts, self._pending = [], 0
        return out

    def _append(self, tokens: np.ndarray) -> None:
        self._parts.append(tokens)
        self._pending += len(tokens)

    def _wrap(self, chunk: np.ndarray) -> Instance:
        return self.make(np.concatenate([self.prefix, chunk, self.suffix]))

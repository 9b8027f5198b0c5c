"""Tokenizers: text -> tokens -> ids, registered by name in ``TOKENIZERS``.

``bert``  Google BERT's WordPiece tokenizer (the same output as Hugging Face's slow BertTokenizer).
``char``  one token per character (UER-py's char tokenizer, common for Chinese).
``space`` whitespace-separated tokens (pre-tokenized corpora).
``spm``   a SentencePiece model; ids are the model's own ids.

Tokenization is Python work, so it belongs in preprocessing, never in the training step.  Every
tokenizer reports a ``fingerprint`` that the dataset's meta.json records, so a dataset cannot be
trained with a different vocabulary or casing than it was built with.
"""

import hashlib
import itertools
import json
import logging
import os
import re
import unicodedata
from typing import Dict, Iterable, Iterator, List, Optional, Set, Tuple

from uer.data.vocab import Vocab, load_spm
from uer.errors import DataError
from uer.registry import TOKENIZERS

logger = logging.getLogger("uer")


class Tokenizer:
    """Base class: subclasses set ``name`` and implement ``tokenize``."""

    name: str = "base"

    def __init__(self, vocab: Vocab, do_lower_case: bool = False):
        self.vocab = vocab
        self.do_lower_case = bool(do_lower_case)

    def tokenize(self, text: str) -> List[str]:
        raise NotImplementedError

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> List[int]:
        """Unknown tokens map to the vocabulary's unk id."""
        index = self.vocab._index
        unk = self.vocab.unk_id
        if unk is None:  # let the vocab raise its explanatory error for the first unknown token
            return [self.vocab.token_to_id(t) for t in tokens]
        return [index.get(t, unk) for t in tokens]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> List[str]:
        return [self.vocab.id_to_token(i) for i in ids]

    def encode(self, text: str) -> List[int]:
        return self.convert_tokens_to_ids(self.tokenize(text))

    def _model_bytes(self) -> bytes:
        """Bytes of a model file that changes tokenization beyond the vocab (SentencePiece)."""
        return b""

    def fingerprint(self) -> str:
        """sha256 over everything that decides the ids a text gets: tokenizer name, casing, the
        vocabulary content and, for SentencePiece, the model itself (scores and normalization)."""
        h = hashlib.sha256()
        h.update(json.dumps([self.name, self.do_lower_case, self.vocab.fingerprint()]).encode("utf-8"))
        h.update(b"\0")
        h.update(self._model_bytes())
        return h.hexdigest()

    def describe(self) -> dict:
        """What a dataset's meta.json records about the tokenizer that built it."""
        return {"name": self.name, "do_lower_case": self.do_lower_case,
                "vocab_size": len(self.vocab), "fingerprint": self.fingerprint()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={len(self.vocab)}, do_lower_case={self.do_lower_case})"


# ---------------------------------------------------------------------- BERT character classes
# These follow Google BERT's tokenization.py definitions so that our output matches theirs
# (and Hugging Face's) on every input, not just on typical text.

def _is_whitespace(ch: str) -> bool:
    # \t \n \r are technically control characters but BERT treats them as whitespace.
    if ch in " \t\n\r":
        return True
    return unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    # Every non-alphanumeric printable ASCII character counts as punctuation ("^", "$", "`" are
    # not in Unicode's P* categories but BERT splits them anyway).
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


# The CJK Unified Ideographs blocks (and compatibility blocks) as BERT defines them.  Hangul,
# Hiragana and Katakana are deliberately absent: those scripts put spaces between words.
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)


def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _clean_text(text: str) -> str:
    """Drop NUL, U+FFFD and control characters; turn every whitespace character into a space."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue
        out.append(" " if _is_whitespace(ch) else ch)
    return "".join(out)


def _space_cjk(text: str) -> str:
    """Surround each CJK ideograph with spaces so every one becomes its own word."""
    out = []
    for ch in text:
        if _is_cjk(ord(ch)):
            out.extend((" ", ch, " "))
        else:
            out.append(ch)
    return "".join(out)


class _CleanAndSpaceTable(dict):
    """``str.translate`` table doing ``_space_cjk(_clean_text(text))`` in one C-level pass: each code point's
    replacement (None: dropped, " " for whitespace, " ch " for a CJK ideograph, itself otherwise) is worked
    out by the Python rules above the first time it is seen, then looked up.  Both steps map every character
    on its own, so composing them per character is exactly running one after the other.  At most one entry
    per distinct character of the corpus: memory does not grow with its size."""

    def __missing__(self, cp: int):
        ch = chr(cp)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            value = None
        elif _is_whitespace(ch):
            value = " "
        elif _is_cjk(cp):
            value = f" {ch} "
        else:
            value = cp
        self[cp] = value
        return value


_CLEAN_AND_SPACE = _CleanAndSpaceTable()


def _strip_accents(text: str) -> str:
    """Decompose (NFD) and drop the combining marks: "café" -> "cafe"."""
    if text.isascii():      # nothing to decompose, no marks
        return text
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")


def _split_on_punctuation(word: str) -> List[str]:
    """Each punctuation character becomes its own token: "don't!" -> ["don", "'", "t", "!"]."""
    pieces: List[str] = []
    current: List[str] = []
    for ch in word:
        if _is_punctuation(ch):
            if current:
                pieces.append("".join(current))
                current = []
            pieces.append(ch)
        else:
            current.append(ch)
    if current:
        pieces.append("".join(current))
    return pieces


def _special_splitter(vocab: Vocab) -> Tuple[Set[str], "re.Pattern[str]"]:
    """The vocab's special-token strings and a regex whose ``split`` cuts them out of a text
    (kept as separate chunks thanks to the capturing group)."""
    specials = set(vocab.special.strings())
    # Longest first so that a special which is a prefix of another never wins the match.
    alternatives = sorted(specials, key=len, reverse=True)
    return specials, re.compile("(" + "|".join(re.escape(s) for s in alternatives) + ")")


@TOKENIZERS.register("bert")
class BertTokenizer(Tokenizer):
    """Google BERT's tokenizer: basic tokenization then greedy longest-match-first WordPiece.

    Basic tokenization: clean the text, space out CJK ideographs, NFC-normalize (as Hugging Face
    does, so "e" + combining accent and "é" tokenize alike), split on whitespace, lower-case and
    strip accents when ``do_lower_case``, split off punctuation.  Special tokens written literally
    in the text (e.g. "[SEP]") are cut out first and kept whole, case-sensitively, as in Hugging
    Face's slow tokenizer.
    """

    name = "bert"
    max_input_chars_per_word = 100
    _CACHE_SIZE = 1 << 16

    def __init__(self, vocab: Vocab, do_lower_case: bool = True):
        super().__init__(vocab, do_lower_case)
        self._specials, self._special_re = _special_splitter(vocab)
        # Whitespace-separated word -> its WordPieces, and -> their ids.  Natural text repeats words
        # constantly, so this makes preprocessing several times faster; capped so that memory does not
        # grow with the corpus.
        self._cache: Dict[str, List[str]] = {}
        self._id_cache: Dict[str, List[int]] = {}

    def __getstate__(self) -> dict:
        # Worker processes get fresh, empty caches rather than pickled copies of ours.
        state = dict(self.__dict__)
        state["_cache"], state["_id_cache"] = {}, {}
        return state

    def __setstate__(self, state: dict) -> None:
        state.setdefault("_id_cache", {})
        self.__dict__.update(state)

    def _chunks(self, text: str) -> Iterator[Tuple[bool, str]]:
        """(is a special token, text) pieces of ``text``, special tokens cut out whole."""
        for chunk in self._special_re.split(text):
            if chunk:
                yield chunk in self._specials, chunk

    def tokenize(self, text: str) -> List[str]:
        tokens: List[str] = []
        for special, chunk in self._chunks(text):
            if special:
                tokens.append(chunk)
                continue
            for word in self._words(chunk):
                tokens.extend(self._word_pieces(word))
        return tokens

    def encode(self, text: str) -> List[int]:
        """``convert_tokens_to_ids(tokenize(text))``, with each word's ids cached (the hot path of
        preprocessing)."""
        unk = self.vocab.unk_id
        if unk is None:     # unknown tokens raise the vocabulary's error: take the general path
            return super().encode(text)
        index, cache = self.vocab._index, self._id_cache
        ids: List[int] = []
        for special, chunk in self._chunks(text):
            if special:
                ids.append(index.get(chunk, unk))
                continue
            words = self._words(chunk)
            start = len(ids)
            try:    # every word seen before (the common case): one C-level pass
                ids.extend(itertools.chain.from_iterable(map(cache.__getitem__, words)))
            except KeyError:
                del ids[start:]
                for word in words:
                    word_ids = cache.get(word)
                    if word_ids is None:
                        word_ids = [index.get(t, unk) for t in self._word_pieces(word)]
                        if len(cache) >= self._CACHE_SIZE:
                            cache.clear()
                        cache[word] = word_ids
                    ids.extend(word_ids)
        return ids

    def _words(self, text: str) -> List[str]:
        """Basic tokenization up to the whitespace split: clean the text, space out CJK ideographs,
        NFC-normalize, split on whitespace (lower-casing and punctuation come per word)."""
        return unicodedata.normalize("NFC", text.translate(_CLEAN_AND_SPACE)).split()

    def _basic_tokenize(self, text: str) -> List[str]:
        words: List[str] = []
        for word in self._words(text):
            words.extend(self._split_word(word))
        return words

    def _split_word(self, word: str) -> List[str]:
        if self.do_lower_case:
            word = _strip_accents(word.lower())
        return _split_on_punctuation(word)

    def _word_pieces(self, word: str) -> List[str]:
        """The WordPieces of one whitespace-separated word (cached)."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        pieces = [piece for part in self._split_word(word) for piece in self._wordpiece_uncached(part)]
        if len(self._cache) >= self._CACHE_SIZE:
            self._cache.clear()
        self._cache[word] = pieces
        return pieces

    def _wordpiece_uncached(self, word: str) -> List[str]:
        """Greedy longest-match-first: take the longest vocab entry that prefixes the rest of the
        word ("##"-prefixed after the first piece); if some position matches nothing, the whole
        word is unknown (a partial split would invent a spelling)."""
        unk = self.vocab.special.unk
        if len(word) > self.max_input_chars_per_word:
            return [unk]
        index = self.vocab._index
        pieces: List[str] = []
        start = 0
        while start < len(word):
            end = len(word)
            match = None
            while start < end:
                candidate = word[start:end] if start == 0 else "##" + word[start:end]
                if candidate in index:
                    match = candidate
                    break
                end -= 1
            if match is None:
                return [unk]
            pieces.append(match)
            start = end
        return pieces


@TOKENIZERS.register("char")
class CharTokenizer(Tokenizer):
    """Every non-whitespace character is one token (UER-py's char tokenizer); characters missing
    from the vocabulary become the unk token already in ``tokenize``, as in UER-py."""

    name = "char"

    def __init__(self, vocab: Vocab, do_lower_case: bool = True):
        super().__init__(vocab, do_lower_case)

    def tokenize(self, text: str) -> List[str]:
        if self.do_lower_case:
            text = text.lower()
        unk = self.vocab.special.unk
        index = self.vocab._index
        return [ch if ch in index else unk for ch in text.strip() if not ch.isspace()]


@TOKENIZERS.register("space")
class SpaceTokenizer(Tokenizer):
    """Whitespace-separated tokens, for corpora that are already tokenized."""

    name = "space"

    def __init__(self, vocab: Vocab, do_lower_case: bool = True):
        super().__init__(vocab, do_lower_case)

    def tokenize(self, text: str) -> List[str]:
        tokens = text.strip().split()
        if self.do_lower_case:
            # Special tokens written in the text keep their case: "[SEP]" must not become "[sep]".
            specials = set(self.vocab.special.strings())
            tokens = [t if t in specials else t.lower() for t in tokens]
        return tokens


@TOKENIZERS.register("spm")
class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model; the vocabulary is its pieces in id order, so our ids are its ids."""

    name = "spm"

    def __init__(self, spm_model_path: str, do_lower_case: bool = False):
        self.spm_model_path = spm_model_path
        self.sp = load_spm(spm_model_path)
        super().__init__(Vocab.from_spm_processor(self.sp, spm_model_path), do_lower_case)
        self._specials, self._special_re = _special_splitter(self.vocab)
        self._model_sha = hashlib.sha256(self.sp.serialized_model_proto()).digest()

    def __getstate__(self) -> dict:
        # Ship the model bytes, not the path: a worker may not see the same filesystem/cwd.
        state = dict(self.__dict__)
        state["sp"] = self.sp.serialized_model_proto()
        return state

    def __setstate__(self, state: dict) -> None:
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor()
        sp.load_from_serialized_proto(state["sp"])
        state["sp"] = sp
        self.__dict__.update(state)

    def _model_bytes(self) -> bytes:
        return self._model_sha

    def _prepare(self, text: str) -> str:
        if not self.do_lower_case:
            return text
        # Lower-case around the special tokens: the model matches "[MASK]" (a user-defined
        # symbol) only in its original case.
        return "".join(chunk if chunk in self._specials else chunk.lower()
                       for chunk in self._special_re.split(text))

    def tokenize(self, text: str) -> List[str]:
        return self.sp.encode(self._prepare(text), out_type=str)

    def encode(self, text: str) -> List[int]:
        # Straight from the model: identical to converting the pieces, without the dict lookups.
        return self.sp.encode(self._prepare(text), out_type=int)

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> List[int]:
        # SentencePiece maps unknown pieces to its own unk id.
        return [self.sp.piece_to_id(t) for t in tokens]


@TOKENIZERS.register("xlmroberta")
class XlmRobertaTokenizer(SentencePieceTokenizer):
    """XLM-R's numbering of a SentencePiece model (fairseq's dictionary): ``<s> <pad> </s> <unk>``
    take ids 0-3, every other piece keeps its SentencePiece id + 1, and ``<mask>`` comes last — so a
    vocabulary of N pieces has N + 2 ids (250,002 for the released models).  Use it with
    ``--tokenizer xlmroberta --spm_model_path sentencepiece.bpe.model`` for XLM-R checkpoints
    converted by scripts/convert.py."""

    name = "xlmroberta"
    FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")

    def __init__(self, spm_model_path: str, do_lower_case: bool = False):
        super().__init__(spm_model_path, do_lower_case)
        pieces = [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]
        # SentencePiece's own unk/bos/eos (ids 0-2 in XLM-R's model) are replaced by the fairseq four.
        tokens = list(self.FAIRSEQ_SPECIALS) + pieces[3:] + ["<mask>"]
        self.vocab = Vocab(tokens, path=spm_model_path)
        self._specials, self._special_re = _special_splitter(self.vocab)
        self._unk_id = self.vocab.token_to_id("<unk>")

    def _from_spm_id(self, i: int) -> int:
        return i + 1 if i >= 3 else self._unk_id     # ids 0-2 are unk/bos/eos, never produced but unk

    def encode(self, text: str) -> List[int]:
        ids: List[int] = []
        for chunk in self._special_re.split(self._prepare(text)) if self._specials else [self._prepare(text)]:
            if not chunk:
                continue
            if chunk in self._specials:
                ids.append(self.vocab.token_to_id(chunk))
            else:
                ids.extend(self._from_spm_id(i) for i in self.sp.encode(chunk, out_type=int))
        return ids

    def tokenize(self, text: str) -> List[str]:
        return [self.vocab.tokens[i] for i in self.encode(text)]

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> List[int]:
        return [self.vocab.token_to_id(t) if t in self.vocab else self._from_spm_id(self.sp.piece_to_id(t))
                for t in tokens]


def build_tokenizer(name: str = "bert", vocab_path: Optional[str] = None,
                    spm_model_path: Optional[str] = None, do_lower_case: bool = True,
                    merges_path: Optional[str] = None) -> Tokenizer:
    """Build a tokenizer from command-line style arguments.

    As in UER-py, giving ``spm_model_path`` selects SentencePiece whatever ``name`` says (e.g.
    ``--tokenizer bert --spm_model_path x.model`` tokenizes with x.model); the vocabulary is then
    the model's pieces and ``vocab_path`` is not needed.  ``--tokenizer bpe`` is GPT-2 / RoBERTa
    byte-level BPE: ``vocab_path`` is its vocab.json and ``merges_path`` its merges.txt.
    """
    import uer.data.bpe  # noqa: F401  (registers "bpe"; it needs this module's base class)
    cls = TOKENIZERS.get(name, where="--tokenizer")
    if name == "bpe":
        if vocab_path is None or merges_path is None:
            raise DataError("--tokenizer bpe needs --vocab_path (vocab.json) and --merges_path (merges.txt)")
        return cls(vocab_path, merges_path)
    if spm_model_path is not None:
        if not os.path.isfile(spm_model_path):
            raise DataError(f"--spm_model_path {spm_model_path} does not exist or is not a file; pass "
                            f"an existing SentencePiece .model file or train one with scripts/build_vocab.py")
        if vocab_path is not None:
            logger.info("--spm_model_path given: the vocabulary is the SentencePiece model's pieces; "
                        "--vocab_path %s is not used for tokenization", vocab_path)
        spm_cls = cls if issubclass(cls, SentencePieceTokenizer) else SentencePieceTokenizer
        return spm_cls(spm_model_path, do_lower_case=do_lower_case)
    if issubclass(cls, SentencePieceTokenizer):
        raise DataError("--spm_model_path is required for the spm tokenizer")
    if vocab_path is None:
        raise DataError(f"--vocab_path is required for the {name} tokenizer (or give --spm_model_path)")
    if not os.path.isfile(vocab_path):
        raise DataError(f"--vocab_path {vocab_path} does not exist or is not a file; pass an existing "
                        f"one-token-per-line vocabulary or build one with scripts/build_vocab.py")
    return cls(Vocab.load(vocab_path), do_lower_case=do_lower_case)

"""Vocabularies: the token list shared by tokenizers, datasets, collators and embeddings.

A ``Vocab`` is an ordered token list (id = position) plus the names of its special tokens.  It is
deliberately independent of any tokenizer so the masking collator can ask "which ids are special"
and "which ids continue a word" without tokenizing anything.

Special tokens are found in the vocabulary itself.  UER-py read ``models/special_tokens_map.json``
relative to the current directory, so the same command behaved differently depending on where it
was run; here the special-token names are decided by the vocabulary's content (or passed
explicitly), never by a file in the working directory.
"""

import hashlib
import os
from dataclasses import dataclass, fields
from typing import Dict, Iterable, List, Optional

import numpy as np

from uer.errors import DataError
from uer.utils import atomic_write_text

# SentencePiece marks the start of a word with U+2581 "LOWER ONE EIGHTH BLOCK".
SPM_WORD_START = "\u2581"
WORDPIECE_PREFIX = "##"

_BUILD_HINT = "use a BERT-style vocab or build one with scripts/build_vocab.py"


@dataclass(frozen=True)
class SpecialTokens:
    """The strings of the five special tokens a model family uses."""

    pad: str = "[PAD]"
    unk: str = "[UNK]"
    cls: str = "[CLS]"
    sep: str = "[SEP]"
    mask: str = "[MASK]"

    def names(self) -> List[str]:
        """Field names in a fixed order: pad, unk, cls, sep, mask."""
        return [f.name for f in fields(self)]

    def strings(self) -> List[str]:
        """The token strings, in the order of ``names()``."""
        return [getattr(self, name) for name in self.names()]


BERT_SPECIALS = SpecialTokens()
ROBERTA_SPECIALS = SpecialTokens(pad="<pad>", unk="<unk>", cls="<s>", sep="</s>", mask="<mask>")


def _detect_specials(index: Dict[str, int]) -> SpecialTokens:
    """BERT names if the vocab has [CLS]; RoBERTa/XLM-R names if it has <s>; else BERT names
    (so that ``require`` reports the conventional [CLS]/[SEP]/... as missing)."""
    if BERT_SPECIALS.cls in index:
        return BERT_SPECIALS
    if ROBERTA_SPECIALS.cls in index:
        return ROBERTA_SPECIALS
    return BERT_SPECIALS


class Vocab:
    """An ordered token list with special-token lookup.

    A duplicated token maps to its first id.  Later copies still occupy their positions, so the
    ids of every other token match the file's line numbers and a hand-edited vocabulary with an
    accidental duplicate keeps working.  (Hugging Face's ``load_vocab`` would map the token to its
    last position instead; Google's published vocabularies have no duplicates, so the two agree
    on them.)
    """

    def __init__(self, tokens: List[str], path: Optional[str] = None,
                 special: Optional[SpecialTokens] = None):
        self.path: Optional[str] = path
        self.tokens: List[str] = list(tokens)
        if not self.tokens:
            raise DataError(f"vocabulary {self._where()} is empty; {_BUILD_HINT}")
        self._index: Dict[str, int] = {}
        for i, token in enumerate(self.tokens):
            # setdefault keeps the first id of a duplicated token.
            self._index.setdefault(token, i)
        self.special: SpecialTokens = special if special is not None else _detect_specials(self._index)
        self.special_ids: List[int] = sorted({self._index[s] for s in self.special.strings()
                                              if s in self._index})
        self.continuation_style: str = self._detect_continuation_style()
        self.is_continuation: np.ndarray = self._compute_is_continuation()
        self._fingerprint: Optional[str] = None

    # ------------------------------------------------------------------ construction

    @classmethod
    def load(cls, path: str, special: Optional[SpecialTokens] = None) -> "Vocab":
        """Read one token per line (UTF-8).

        Lines are split the way Hugging Face's ``load_vocab`` does: text-mode ``readlines`` (so
        "\\r\\n" is a line end too) then ``rstrip("\\n")``; any other whitespace is part of the
        token.  A UTF-8 byte-order mark at the start of the file is dropped, otherwise it would
        silently glue itself to the first token (usually [PAD]) and hide it.
        """
        if not os.path.exists(path):
            raise DataError(f"vocabulary file {path} does not exist; pass an existing one-token-per-line "
                            f"file (--vocab_path) or build one with scripts/build_vocab.py")
        if os.path.isdir(path):
            raise DataError(f"vocabulary path {path} is a directory; pass the vocabulary file itself "
                            f"(e.g. {os.path.join(path, 'vocab.txt')})")
        try:
            with open(path, "r", encoding="utf-8") as f:
                lines = f.readlines()
        except UnicodeDecodeError as e:
            raise DataError(f"vocabulary file {path} is not valid UTF-8 (byte {e.start}); "
                            f"re-save it as UTF-8") from None
        tokens = [line.rstrip("\n") for line in lines]
        if tokens and tokens[0].startswith("\ufeff"):
            tokens[0] = tokens[0][1:]
        if not any(tokens):
            raise DataError(f"vocabulary file {path} is empty; pass a one-token-per-line vocabulary "
                            f"or build one with scripts/build_vocab.py")
        return cls(tokens, path=path, special=special)

    @classmethod
    def from_spm(cls, spm_model_path: str) -> "Vocab":
        """The pieces of a SentencePiece model in id order, so vocab ids equal SentencePiece ids."""
        return cls.from_spm_processor(load_spm(spm_model_path), spm_model_path)

    @classmethod
    def from_spm_processor(cls, sp, path: Optional[str] = None) -> "Vocab":
        """Like ``from_spm`` for an already loaded ``SentencePieceProcessor``."""
        tokens = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
        index = {}
        for i, t in enumerate(tokens):
            index.setdefault(t, i)
        special = _detect_specials(index)
        # The model itself knows its unknown and padding pieces; trust it over name conventions
        # (e.g. a model with "<unk>" but also a user-defined "[CLS]").
        overrides = {}
        if sp.unk_id() >= 0:
            overrides["unk"] = sp.id_to_piece(sp.unk_id())
        if sp.pad_id() >= 0:
            overrides["pad"] = sp.id_to_piece(sp.pad_id())
        if overrides:
            special = SpecialTokens(**{**{n: getattr(special, n) for n in special.names()}, **overrides})
        return cls(tokens, path=path, special=special)

    # ------------------------------------------------------------------ lookup

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, path={self.path!r}, specials={self.special.cls!r}-style)"

    def token_to_id(self, token: str) -> int:
        """The id of ``token``; unknown tokens map to the unk id."""
        i = self._index.get(token)
        if i is not None:
            return i
        unk = self.unk_id
        if unk is None:
            raise DataError(f"token {token!r} is not in vocabulary {self._where()}, which has no "
                            f"{self.special.unk} token to stand in for it; {_BUILD_HINT}")
        return unk

    def id_to_token(self, i: int) -> str:
        i = int(i)
        if not 0 <= i < len(self.tokens):
            raise IndexError(f"token id {i} is outside vocabulary {self._where()} of size {len(self)}")
        return self.tokens[i]

    def _special_id(self, name: str) -> Optional[int]:
        return self._index.get(getattr(self.special, name))

    @property
    def pad_id(self) -> Optional[int]:
        return self._special_id("pad")

    @property
    def unk_id(self) -> Optional[int]:
        return self._special_id("unk")

    @property
    def cls_id(self) -> Optional[int]:
        return self._special_id("cls")

    @property
    def sep_id(self) -> Optional[int]:
        return self._special_id("sep")

    @property
    def mask_id(self) -> Optional[int]:
        return self._special_id("mask")

    def require(self, names: Iterable[str] = ("cls", "sep", "pad", "unk", "mask"), purpose: str = "") -> None:
        """Fail early, with a useful message, when a special token a processor/collator needs is
        absent (rather than deep inside training with a ``None`` id)."""
        valid = set(self.special.names())
        missing = []
        for name in names:
            if name not in valid:
                raise ValueError(f"unknown special token name {name!r}; valid: {sorted(valid)}")
            token = getattr(self.special, name)
            if token not in self._index:
                missing.append(token)
        if missing:
            needed = f" needed for {purpose}" if purpose else ""
            raise DataError(f"vocabulary {self._where()} lacks {', '.join(missing)}{needed}; {_BUILD_HINT}")

    # ------------------------------------------------------------------ word structure

    def _detect_continuation_style(self) -> str:
        """Decide once per vocab how word continuations are marked: "wordpiece" (##x),
        "spm" (pieces without a leading ▁ continue a word) or "none"."""
        if any(t.startswith(WORDPIECE_PREFIX) for t in self.tokens):
            return "wordpiece"
        if any(t.startswith(SPM_WORD_START) for t in self.tokens):
            return "spm"
        return "none"

    def _compute_is_continuation(self) -> np.ndarray:
        if self.continuation_style == "wordpiece":
            flags = [t.startswith(WORDPIECE_PREFIX) and len(t) > len(WORDPIECE_PREFIX) for t in self.tokens]
        elif self.continuation_style == "spm":
            flags = [not t.startswith(SPM_WORD_START) for t in self.tokens]
        else:
            flags = [False] * len(self.tokens)
        out = np.asarray(flags, dtype=bool)
        # Specials are never part of a word (whole-word masking must not glue [SEP] to a word).
        # Mark every position holding a special string, duplicates included.
        specials = set(self.special.strings())
        for i, t in enumerate(self.tokens):
            if t in specials:
                out[i] = False
        # Shared by every consumer: make accidental in-place edits an error.
        out.setflags(write=False)
        return out

    # ------------------------------------------------------------------ identity and output

    def fingerprint(self) -> str:
        """sha256 of the token list content; equal for equal content wherever the file lives."""
        if self._fingerprint is None:
            self._fingerprint = hashlib.sha256("\n".join(self.tokens).encode("utf-8")).hexdigest()
        return self._fingerprint

    def save(self, path: str) -> None:
        """Write one token per line, atomically (temp file + rename) so readers never see half a file."""
        for i, t in enumerate(self.tokens):
            if "\n" in t or "\r" in t:
                raise DataError(f"token {i} ({t!r}) contains a line break and cannot be saved one "
                                f"token per line")
        atomic_write_text(path, "".join(t + "\n" for t in self.tokens))

    def _where(self) -> str:
        return self.path if self.path is not None else "(built in memory)"


def load_spm(spm_model_path: str):
    """Load a SentencePiece model, turning every failure into a DataError that names the file."""
    import sentencepiece as spm  # imported lazily: only SentencePiece users need it

    if not os.path.exists(spm_model_path):
        raise DataError(f"SentencePiece model {spm_model_path} does not exist; pass an existing "
                        f"--spm_model_path or train one with scripts/build_vocab.py")
    if os.path.isdir(spm_model_path):
        raise DataError(f"SentencePiece model path {spm_model_path} is a directory; pass the .model file")
    sp = spm.SentencePieceProcessor()
    try:
        sp.load(spm_model_path)
    except (OSError, RuntimeError) as e:
        raise DataError(f"cannot load SentencePiece model {spm_model_path}: {e}; is it a .model file "
                        f"written by SentencePiece?") from None
    return sp

"""Word boundaries for whole-word masking of text whose tokenizer cannot see words.

BERT's tokenizer (and the ``char`` tokenizer) cut Chinese into single characters, so the ``##``
rule finds no words there: UER-py segments Chinese with jieba for ``--whole_word_masking``.  We do
the same once, at preprocess time, and store the result in the dataset as a second stream,
``word_cont`` (1 where a token continues the word of the token before it), so the training
collator stays fast and deterministic.

How the boundaries survive the processors untouched: ``SegmentingTokenizer.encode`` returns ids
with ``CONTINUATION_FLAG`` added to every token that continues a word.  The processors only cut,
move and wrap ids ([CLS]/[SEP] are never flagged), so when an instance is written its flags are
still on the right tokens and ``split_flags`` separates them into the two streams.

For text outside the CJK range jieba's words are the whitespace words, whose pieces the tokenizer
already marks ``##``: the two rules agree there.
"""

import logging
import os
from typing import List, Optional, Tuple

import numpy as np

from uer.errors import ConfigError

CONTINUATION_FLAG = 1 << 24         # above any vocabulary id (ids are stored as uint16/uint32)
WORD_STREAM = "word_cont"
SEGMENTERS = ("jieba", "none")
# Tokenizers that split CJK text into single characters: whole-word masking needs a segmenter there.
CHARACTER_LEVEL_TOKENIZERS = ("bert", "char")

_JIEBA = {}      # per process: the jieba Tokenizer for a user dictionary (loaded on first use)


def _jieba(user_dict: Optional[str]):
    if user_dict not in _JIEBA:
        try:
            import jieba
        except ImportError:
            raise ConfigError("--whole_word_masking on text a character-level tokenizer reads segments words "
                              "with jieba, which is not installed: pip install jieba (or uer[zh]), or pass "
                              "--word_segmenter none for the ## rule only")
        jieba.setLogLevel(logging.WARNING)          # it logs its dictionary loading at INFO
        segmenter = jieba.Tokenizer()
        if user_dict:
            segmenter.load_userdict(user_dict)
        _JIEBA[user_dict] = segmenter
    return _JIEBA[user_dict]


def check_user_dict(path: Optional[str]) -> Optional[str]:
    if path is None:
        return None
    if not os.path.isfile(path):
        raise ConfigError(f"--user_dict_path {path} does not exist; give a jieba user dictionary "
                          "(one word per line, optionally followed by a frequency and a tag)")
    return os.path.abspath(path)


class SegmentingTokenizer:
    """A tokenizer whose ``encode`` flags word continuations (see the module docstring); every
    other attribute is the wrapped tokenizer's.  Picklable: jieba loads lazily in each worker."""

    def __init__(self, tokenizer, user_dict: Optional[str] = None):
        self.tokenizer = tokenizer
        self.user_dict = user_dict

    def __getattr__(self, name):
        return getattr(self.__dict__["tokenizer"], name)

    def __getstate__(self):
        return {"tokenizer": self.tokenizer, "user_dict": self.user_dict}

    def __setstate__(self, state):
        self.__dict__.update(state)

    def words(self, text: str) -> List[str]:
        return [w for w in _jieba(self.user_dict).lcut(text) if w.strip()]

    def encode(self, text: str) -> List[int]:
        ids: List[int] = []
        for word in self.words(text):
            pieces = [int(i) for i in self.tokenizer.encode(word)]
            ids.extend(pieces[:1] + [p + CONTINUATION_FLAG for p in pieces[1:]])
        return ids


def split_flags(src) -> Tuple[np.ndarray, np.ndarray]:
    """(ids, word_cont) of an instance built from flagged ids."""
    src = np.asarray(src, dtype=np.int64)
    flags = src >= CONTINUATION_FLAG
    return np.where(flags, src - CONTINUATION_FLAG, src), flags.astype(np.int64)


def segmenting(tokenizer, whole_word_masking: bool, segmenter: Optional[str],
               user_dict: Optional[str]) -> Tuple[object, Optional[dict]]:
    """The tokenizer preprocessing uses and what meta.json records of the word boundaries.
    ``segmenter`` None: jieba where whole-word masking meets a character-level tokenizer over a
    Chinese vocabulary (``needs_segmenter``); "jieba" forces it, "none" turns it off."""
    if segmenter is not None and segmenter not in SEGMENTERS:
        raise ConfigError(f"--word_segmenter {segmenter!r}: choose one of {list(SEGMENTERS)}")
    if user_dict and not whole_word_masking:
        raise ConfigError("--user_dict_path is for --whole_word_masking (jieba's user dictionary); add "
                          "--whole_word_masking or drop it")
    if not whole_word_masking or segmenter == "none":
        return tokenizer, None
    if segmenter is None and not needs_segmenter(tokenizer.vocab, getattr(tokenizer, "name", "")):
        return tokenizer, None        # WordPiece on English, SentencePiece, BPE: ## / ▁ mark words already
    user_dict = check_user_dict(user_dict)
    _jieba(user_dict)                 # a missing jieba or a bad dictionary fails here, before any work
    return SegmentingTokenizer(tokenizer, user_dict), {"segmenter": "jieba", "user_dict": user_dict}


def needs_segmenter(vocab, tokenizer_name: str) -> bool:
    """Whole-word masking without stored boundaries would silently be token masking: a
    character-level tokenizer over a vocabulary made mostly for CJK text (Google's Chinese vocab
    holds 7,321 single CJK characters, its English one 244)."""
    if tokenizer_name not in CHARACTER_LEVEL_TOKENIZERS:
        return False
    cjk = sum(1 for token in vocab.tokens if len(token) == 1 and "\u4e00" <= token <= "\u9fff")
    return cjk >= 1000



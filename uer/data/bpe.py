"""Byte-level BPE (``vocab.json`` + ``merges.txt``), matching Hugging Face's GPT2Tokenizer and the
``tokenizers`` BPE models of SmolLM, LLaMA-3 and Qwen2.

Text is cut into words by a pattern, each word's UTF-8 bytes are mapped to printable characters (so
no byte is ever unknown), then merged pairwise by rank.  Special tokens (``<|endoftext|>``, ``<s>`` ...)
are split out first and kept whole.

A ``merges.txt`` written by scripts/convert.py from a ``tokenizer.json`` carries that tokenizer's rules
on its first line, after the ``#version`` marker every reader skips: ``#version: 0.2 uer-bpe {json}``
with the normalizer and pre-tokenizer (``uer/data/bpe_rules.py``), ``ignore_merges``, the added tokens
and which of them are the start / end / padding tokens.  A file without it is GPT-2's (GPT-2's
pattern; RoBERTa's or GPT-2's special tokens, whichever the vocabulary has).

The patterns need Unicode classes (``\\p{L}``, ``\\p{N}``) that only the ``regex`` package provides.
Registered as ``--tokenizer bpe`` (with ``--vocab_path vocab.json --merges_path merges.txt``).
"""

import functools
import hashlib
import json
import os
import re
from typing import Dict, List, Optional, Tuple

from uer.data.bpe_rules import GPT2_RULES, BpeRules
from uer.data.tokenizers import Tokenizer
from uer.data.vocab import ROBERTA_SPECIALS, SpecialTokens, Vocab
from uer.errors import DataError
from uer.registry import TOKENIZERS
from uer.data.text_files import open_text

GPT2_SPECIALS = SpecialTokens(pad="<|endoftext|>", unk="<|endoftext|>", cls="<|endoftext|>",
                              sep="<|endoftext|>", mask="<|endoftext|>")
RULES_MARK = " uer-bpe "      # first line: "#version: 0.2 uer-bpe {json}"


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> Dict[int, str]:
    """Byte -> a printable character: printable Latin-1 bytes stand for themselves, the others are
    shifted above 255 (GPT-2's table, so that vocab.json entries read the same)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    table, shift = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shift)
            shift += 1
    return table


def rules_line(rules: Dict) -> str:
    """The first line of a merges.txt that carries ``rules``."""
    return "#version: 0.2" + RULES_MARK + json.dumps(rules, ensure_ascii=False, separators=(",", ":"))


def read_merges_and_rules(path: str) -> Tuple[List[Tuple[str, str]], Optional[Dict]]:
    """The merges in rank order and the rules of the first line (None: a plain GPT-2 file)."""
    merges, rules = [], None
    with open_text(path) as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if number == 1 and line.startswith("#version"):
                if RULES_MARK in line:
                    try:
                        rules = json.loads(line.split(RULES_MARK, 1)[1])
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path} line 1: the uer-bpe rules are not valid JSON ({e.msg}); "
                                        "convert the tokenizer.json again with scripts/convert.py") from None
                continue
            if not line:
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise DataError(f"{path} line {number}: a merge is two symbols separated by one space, "
                                f"got {line!r}")
            merges.append((parts[0], parts[1]))
    return merges, rules


def read_merges(path: str) -> List[Tuple[str, str]]:
    return read_merges_and_rules(path)[0]


def special_tokens_of(rules: Dict, encoder: Dict[str, int], where: str) -> SpecialTokens:
    """Start / end / padding / unknown tokens named by the rules (``special``); the end token stands in
    for the ones a byte-level model lacks (no byte is ever unknown; decoders have no mask token)."""
    named = rules.get("special") or {}
    eos = named.get("eos")
    if eos not in encoder:
        raise DataError(f"{where}: the uer-bpe rules name no end-of-text token in the vocabulary "
                        f"(special.eos = {eos!r}); convert the tokenizer.json again with scripts/convert.py")
    pick = {k: named.get(k) if named.get(k) in encoder else eos for k in ("bos", "pad", "unk")}
    return SpecialTokens(pad=pick["pad"], unk=pick["unk"], cls=pick["bos"], sep=eos, mask=eos)


@TOKENIZERS.register("bpe")
class ByteLevelBpeTokenizer(Tokenizer):
    name = "bpe"

    def __init__(self, vocab_json_path: str, merges_path: str):
        for path in (vocab_json_path, merges_path):
            if not os.path.isfile(path):
                raise DataError(f"{path} does not exist; byte-level BPE needs vocab.json and merges.txt")
        with open_text(vocab_json_path) as f:
            encoder: Dict[str, int] = json.loads(f.read())
        tokens: List[Optional[str]] = [None] * len(encoder)
        for token, i in encoder.items():
            if not 0 <= i < len(tokens) or tokens[i] is not None:
                raise DataError(f"{vocab_json_path}: ids must be 0..{len(tokens) - 1}, each once "
                                f"(token {token!r} has id {i})")
            tokens[i] = token
        self.merges, rules = read_merges_and_rules(merges_path)
        if rules is None:      # GPT-2 / RoBERTa files: their special tokens are the ones split out
            special = ROBERTA_SPECIALS if ROBERTA_SPECIALS.cls in encoder else GPT2_SPECIALS
            added = [s for s in special.strings() if s in encoder]
            self.ignore_merges = False
        else:
            special = special_tokens_of(rules, encoder, merges_path)
            added = [t["content"] for t in rules.get("added_tokens", [])]
            self.ignore_merges = bool(rules.get("ignore_merges"))
            missing = [t for t in added if t not in encoder]
            if missing:
                raise DataError(f"{merges_path}: added tokens {missing[:5]} are not in {vocab_json_path}; "
                                "pass the vocab.json converted with this merges.txt")
        self.rules = BpeRules(rules or GPT2_RULES, merges_path)
        # The tokens a tokenizer.json's configs named (bos / eos / pad / unk); None for GPT-2 files.
        self.named_special = dict(rules.get("special") or {}) if rules is not None else None
        super().__init__(Vocab(tokens, path=vocab_json_path, special=special), do_lower_case=False)
        self.encoder = encoder
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self.byte_encoder = bytes_to_unicode()
        # Longest first: at one position the longest added token wins, as in ``tokenizers``.
        specials = sorted(set(added), key=len, reverse=True)
        self.special_re = re.compile("(" + "|".join(map(re.escape, specials)) + ")") if specials else None
        self.specials = set(specials)
        with open(merges_path, "rb") as f:
            self._merges_sha = hashlib.sha256(f.read()).digest()
        self._cache: Dict[str, List[str]] = {}

    def _model_bytes(self) -> bytes:
        return self._merges_sha

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    def bpe(self, word: str) -> List[str]:
        """Merge the symbols of one (byte-mapped) word, lowest rank first."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        if self.ignore_merges and word in self.encoder:    # LLaMA-3: a whole word in the vocab is one token
            return [word]
        symbols = list(word)
        while len(symbols) > 1:
            pairs = {(a, b) for a, b in zip(symbols, symbols[1:])}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(symbols):
                if i < len(symbols) - 1 and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        if len(self._cache) < 100000:
            self._cache[word] = symbols
        return symbols

    def tokenize(self, text: str) -> List[str]:
        chunks = self.special_re.split(text) if self.special_re else [text]
        tokens: List[str] = []
        for chunk in chunks:
            if chunk in self.specials:
                tokens.append(chunk)
                continue
            for word in self.rules.words(self.rules.normalize(chunk)):
                mapped = "".join(self.byte_encoder[b] for b in word.encode("utf-8"))
                tokens.extend(self.bpe(mapped))
        return tokens

    def decode(self, ids: List[int]) -> str:
        decoder = {c: b for b, c in self.byte_encoder.items()}
        text = "".join(self.vocab.id_to_token(i) for i in ids)
        return bytearray(decoder[c] for c in text if c in decoder).decode("utf-8", errors="replace")

"""GPT-2 / RoBERTa byte-level BPE (``vocab.json`` + ``merges.txt``), matching Hugging Face's GPT2Tokenizer.

Text is cut into words by GPT-2's pattern, each word's UTF-8 bytes are mapped to printable
characters (so no byte is ever unknown), then merged pairwise by rank.  Special tokens found in the
vocabulary (``<|endoftext|>``, ``<s>`` ...) are split out first and kept whole.

The pattern needs Unicode classes (``\\p{L}``, ``\\p{N}``) that only the ``regex`` package provides.
Registered as ``--tokenizer bpe`` (with ``--vocab_path vocab.json --merges_path merges.txt``).
"""

import functools
import hashlib
import json
import os
import re
from typing import Dict, List, Optional, Tuple

from uer.data.tokenizers import Tokenizer
from uer.data.vocab import ROBERTA_SPECIALS, SpecialTokens, Vocab
from uer.errors import DataError
from uer.registry import TOKENIZERS
from uer.data.text_files import open_text

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT2_SPECIALS = SpecialTokens(pad="<|endoftext|>", unk="<|endoftext|>", cls="<|endoftext|>",
                              sep="<|endoftext|>", mask="<|endoftext|>")


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


def read_merges(path: str) -> List[Tuple[str, str]]:
    merges = []
    with open_text(path) as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or (number == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise DataError(f"{path} line {number}: a merge is two symbols separated by one space, "
                                f"got {line!r}")
            merges.append((parts[0], parts[1]))
    return merges


@TOKENIZERS.register("bpe")
class ByteLevelBpeTokenizer(Tokenizer):
    name = "bpe"

    def __init__(self, vocab_json_path: str, merges_path: str):
        try:
            import regex
        except ImportError:
            raise DataError("the byte-level BPE tokenizer needs the 'regex' package (pip install regex) "
                            "for GPT-2's Unicode word pattern")
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
        special = ROBERTA_SPECIALS if ROBERTA_SPECIALS.cls in encoder else GPT2_SPECIALS
        super().__init__(Vocab(tokens, path=vocab_json_path, special=special), do_lower_case=False)
        self.merges = read_merges(merges_path)
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self.byte_encoder = bytes_to_unicode()
        self.pattern = regex.compile(GPT2_PATTERN)
        specials = sorted({s for s in special.strings() if s in encoder}, key=len, reverse=True)
        self.special_re = re.compile("(" + "|".join(map(re.escape, specials)) + ")") if specials else None
        self.specials = set(specials)
        with open(merges_path, "rb") as f:
            self._merges_sha = hashlib.sha256(f.read()).digest()
        self._cache: Dict[str, List[str]] = {}

    def _model_bytes(self) -> bytes:
        return self._merges_sha

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["pattern"] = None     # compiled regex objects are rebuilt after unpickling
        state["_cache"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        import regex
        state["pattern"] = regex.compile(GPT2_PATTERN)
        self.__dict__.update(state)

    def bpe(self, word: str) -> List[str]:
        """Merge the symbols of one (byte-mapped) word, lowest rank first."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
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
            for word in self.pattern.findall(chunk):
                mapped = "".join(self.byte_encoder[b] for b in word.encode("utf-8"))
                tokens.extend(self.bpe(mapped))
        return tokens

    def decode(self, ids: List[int]) -> str:
        decoder = {c: b for b, c in self.byte_encoder.items()}
        text = "".join(self.vocab.id_to_token(i) for i in ids)
        return bytearray(decoder[c] for c in text if c in decoder).decode("utf-8", errors="replace")

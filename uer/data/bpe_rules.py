"""How a byte-level BPE cuts text before merging: the normalizer and pre-tokenizer of a Hugging Face
``tokenizer.json``, for the forms byte-level vocabularies use.

GPT-2 / RoBERTa (``ByteLevel`` with its built-in pattern), SmolLM (``Digits`` then ``ByteLevel``),
LLaMA-3, Qwen2 and BLOOM (``Split`` by their own pattern, then ``ByteLevel`` without one; Qwen2 also NFC).
Anything else is refused, naming the part, because tokenizing "nearly alike" would silently give other
ids than the model was trained with.  A ``Split`` pattern must be one of ``KNOWN_PATTERNS`` (patterns
this module has been checked against ``tokenizers`` on real text with): Python's ``regex`` and the
Oniguruma engine ``tokenizers`` uses read some syntax differently (nested character classes), so an
unknown pattern is not run on trust.

The rules travel in the first line of our ``merges.txt`` (see ``uer/data/bpe.py``); a file without
them is GPT-2's.
"""

import unicodedata
from typing import Any, Dict, List, Optional

from uer.errors import DataError

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
KNOWN_PATTERNS = {
    "gpt2": GPT2_PATTERN,
    # LLaMA-3 (and tiktoken's cl100k): up to three digits a piece, punctuation keeps trailing newlines.
    "llama3": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
              r"""|\s*[\r\n]+|\s+(?!\S)|\s+""",
    # Qwen2: LLaMA-3's with single digits.
    "qwen2": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
             r"""|\s*[\r\n]+|\s+(?!\S)|\s+""",
    # BLOOM: runs of anything but whitespace and its punctuation.  Oniguruma reads the inner [...] as a
    # class nested in the outer one; Python's regex (version 0) would not, hence PYTHON_SPELLING.
    "bloom": r""" ?[^(\s|[.,!?…。，、।۔،])]+""",
}
# tokenizers' source -> the same pattern as Python's regex reads it (checked on real text in the tests).
PYTHON_SPELLING = {KNOWN_PATTERNS["bloom"]: r""" ?[^(\s|.,!?…。，、।۔،)]+"""}
NORMAL_FORMS = ("NFC", "NFD", "NFKC", "NFKD")
# GPT-2's rules: what a merges.txt without our header means.
GPT2_RULES = {"normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                                                    "trim_offsets": True, "use_regex": True}}


def _regex():
    try:
        import regex
    except ImportError:
        raise DataError("the byte-level BPE tokenizer needs the 'regex' package (pip install regex) "
                        "for its Unicode word patterns") from None
    return regex


def _normal_forms(normalizer: Optional[Dict[str, Any]], where: str) -> List[str]:
    if normalizer is None:
        return []
    kind = normalizer.get("type")
    if kind == "Sequence":
        return [form for part in normalizer.get("normalizers", []) for form in _normal_forms(part, where)]
    if kind in NORMAL_FORMS:
        return [kind]
    raise DataError(f"{where}: normalizer {kind!r} is not one uer's byte-level BPE applies (it applies "
                    f"{', '.join(NORMAL_FORMS)} and sequences of them); this tokenizer cannot be converted")


def _split_patterns(pre: Optional[Dict[str, Any]], where: str) -> List[str]:
    """The regex sources of each splitting step, in order; ByteLevel must come once, last."""
    if pre is None:
        raise DataError(f"{where}: no pre_tokenizer; a byte-level BPE needs ByteLevel (the tokenizer is not "
                        "byte-level, so it cannot become uer's bpe files)")
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    patterns: List[str] = []
    for number, step in enumerate(steps):
        kind = step.get("type")
        last = number == len(steps) - 1
        if kind == "ByteLevel":
            if not last:
                raise DataError(f"{where}: pre_tokenizer steps after ByteLevel are not supported")
            if step.get("add_prefix_space"):
                raise DataError(f"{where}: ByteLevel add_prefix_space=true is not supported (uer's bpe adds "
                                "no space before the text); this tokenizer cannot be converted")
            if step.get("use_regex", True):
                patterns.append(GPT2_PATTERN)
            return patterns
        if kind == "Digits":
            patterns.append(r"\p{N}" if step.get("individual_digits") else r"\p{N}+")
        elif kind == "Split":
            source = (step.get("pattern") or {}).get("Regex")
            if source not in KNOWN_PATTERNS.values():
                raise DataError(f"{where}: Split pattern {step.get('pattern')!r} is not one uer's bpe reproduces "
                                f"exactly (known: {', '.join(KNOWN_PATTERNS)}); this tokenizer cannot be converted")
            if step.get("behavior") != "Isolated" or step.get("invert"):
                raise DataError(f"{where}: Split behavior {step.get('behavior')!r} (invert "
                                f"{step.get('invert')}) is not supported; only Isolated without invert")
            patterns.append(PYTHON_SPELLING.get(source, source))
        else:
            raise DataError(f"{where}: pre_tokenizer {kind!r} is not one uer's byte-level BPE applies (it applies "
                            "ByteLevel, Split by a known pattern, Digits); this tokenizer cannot be converted")
    raise DataError(f"{where}: the pre_tokenizer has no ByteLevel step; the tokenizer is not byte-level, "
                    "so it cannot become uer's bpe files")


class BpeRules:
    """Normalize a text and cut it into the words BPE merges within (before the byte mapping)."""

    def __init__(self, rules: Dict[str, Any], where: str):
        self.rules = rules
        self.where = where
        self.forms = _normal_forms(rules.get("normalizer"), where)
        self.sources = _split_patterns(rules.get("pre_tokenizer"), where)
        self._compile()

    def _compile(self) -> None:
        regex = _regex()
        self.patterns = [regex.compile(s) for s in self.sources]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["patterns"] = None      # compiled regex objects are rebuilt after unpickling
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._compile()

    def normalize(self, text: str) -> str:
        for form in self.forms:
            text = unicodedata.normalize(form, text)
        return text

    def words(self, text: str) -> List[str]:
        """Each step cuts every piece into its matches and the text between them (``Isolated``)."""
        pieces = [text] if text else []
        for pattern in self.patterns:
            out: List[str] = []
            for piece in pieces:
                start = 0
                for m in pattern.finditer(piece):
                    if m.start() == m.end():
                        continue
                    if m.start() > start:
                        out.append(piece[start:m.start()])
                    out.append(m.group())
                    start = m.end()
                if start < len(piece):
                    out.append(piece[start:])
            pieces = out
        return pieces

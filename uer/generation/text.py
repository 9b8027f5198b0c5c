"""Text in and out of generation: token ids back to text for each tokenizer, and the one-line
output format (a newline inside generated text is written as the two characters ``\\n``)."""

import re
from typing import List, Sequence

_WORD = re.compile(r"^[0-9A-Za-z\u00C0-\u024F]")


def _joins_with_space(left: str, right: str) -> bool:
    """WordPiece text: words of alphabetic scripts are separated by spaces, Chinese characters and
    punctuation are not, and "##x" continues the word before it."""
    return bool(left) and not right.startswith("##") and bool(_WORD.match(left[-1:])) and bool(_WORD.match(right))


def detokenize(tokenizer, ids: Sequence[int]) -> str:
    """Text of ``ids`` for the tokenizer that produced them (special tokens are the caller's to drop)."""
    ids = [int(i) for i in ids]
    if not ids:
        return ""
    if hasattr(tokenizer, "decode"):                      # byte-level BPE
        return tokenizer.decode(ids)
    sp = getattr(tokenizer, "sp", None)
    if sp is not None:                                    # SentencePiece
        return sp.decode(ids)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    if tokenizer.name == "char":
        return "".join(tokens)
    if tokenizer.name == "space":
        return " ".join(tokens)
    specials = set(tokenizer.vocab.special.strings())
    text, after_special = "", False
    for token in tokens:
        piece = token[2:] if token.startswith("##") and len(token) > 2 else token
        space = text and (after_special or token in specials or _joins_with_space(text, token))
        text += (" " if space else "") + piece
        after_special = token in specials
    return text


def join_continuation(prompt: str, continuation: str, tokenizer) -> str:
    """The prompt line followed by its continuation.  Byte-level BPE and SentencePiece text carries
    its own spaces; WordPiece and space-separated tokens get one between two words."""
    if tokenizer.name in ("bert", "space") and _joins_with_space(prompt, continuation):
        return prompt + " " + continuation
    return prompt + continuation


def one_line(text: str) -> str:
    """Newlines (\\r\\n, \\n, \\r) inside generated text become the two characters \\n."""
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def strip_end(ids: List[int], eos_id) -> List[int]:
    return ids[:-1] if ids and eos_id is not None and ids[-1] == eos_id else ids

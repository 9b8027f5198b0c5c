"""Reading ``source<TAB>target`` corpus lines (mt, prefixlm): every bad line is an error naming the
file and line, not a silently skipped example (UER-py skips them)."""

from typing import List, Tuple

from uer.data.processors.base import Doc, encode_ids
from uer.errors import DataError


def split_pair(corpus_path: str, line_no: int, text: str, what: str) -> Tuple[str, str]:
    parts = text.split("\t")
    if len(parts) != 2:
        found = "no tab" if len(parts) == 1 else f"{len(parts) - 1} tabs"
        raise DataError(f"{corpus_path}, line {line_no}: expected {what} separated by one tab, found {found} "
                        f"({text[:60]!r}); fix or remove the line")
    return parts[0], parts[1]


def tokenize_pairs(docs: List[Doc], corpus_path: str, src_tokenizer, tgt_tokenizer,
                   what: str) -> List[Tuple[List[int], List[int]]]:
    out = []
    for line_no, lines in docs:
        a, b = split_pair(corpus_path, line_no, lines[0], what)
        ids_a, ids_b = encode_ids(src_tokenizer, a), encode_ids(tgt_tokenizer, b)
        for side, ids in (("first", ids_a), ("second", ids_b)):
            if not ids:
                raise DataError(f"{corpus_path}, line {line_no}: the {side} column tokenizes to nothing "
                                f"({lines[0][:60]!r}); fix or remove the line")
        out.append((ids_a, ids_b))
    return out

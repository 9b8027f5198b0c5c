"""Compare two vocabularies (UER-py's scripts/diff_vocab.py): their sizes, the sizes of the two
differences and of the intersection, and (here) which tokens they are."""

from dataclasses import dataclass
from typing import List

from uer.data.vocab import Vocab


@dataclass
class VocabDiff:
    size_1: int                 # distinct tokens of vocab_1 (a duplicated token counts once)
    size_2: int
    only_1: List[str]           # in vocab_1 and not vocab_2, in vocab_1's order
    only_2: List[str]           # in vocab_2 and not vocab_1, in vocab_2's order
    common: int

    def summary(self, path_1: str, path_2: str) -> str:
        """UER-py's five lines."""
        return (f"vocab_1: {path_1}, size: {self.size_1}\n"
                f"vocab_2: {path_2}, size: {self.size_2}\n"
                f"vocab_1 - vocab_2 = {len(self.only_1)}\n"
                f"vocab_2 - vocab_1 = {len(self.only_2)}\n"
                f"vocab_1 & vocab_2 = {self.common}\n")

    def listing(self) -> str:
        """One token a line, diff-style: ``<\\ttoken`` only in vocab_1, ``>\\ttoken`` only in vocab_2."""
        return "".join(f"<\t{t}\n" for t in self.only_1) + "".join(f">\t{t}\n" for t in self.only_2)


def _distinct(tokens: List[str]) -> List[str]:
    return list(dict.fromkeys(tokens))


def diff_vocab(vocab_1: Vocab, vocab_2: Vocab) -> VocabDiff:
    tokens_1, tokens_2 = _distinct(vocab_1.tokens), _distinct(vocab_2.tokens)
    set_1, set_2 = set(tokens_1), set(tokens_2)
    return VocabDiff(size_1=len(tokens_1), size_2=len(tokens_2),
                     only_1=[t for t in tokens_1 if t not in set_2],
                     only_2=[t for t in tokens_2 if t not in set_1],
                     common=len(set_1 & set_2))

"""Word embeddings of a checkpoint: written as text (UER-py's scripts/extract_embeddings.py) and
searched for nearest neighbours by cosine similarity (UER-py's scripts/topn_words_indep.py)."""

import logging
from typing import Iterable, List, Optional, Tuple

import torch
import torch.nn.functional as F

from uer.data.vocab import Vocab
from uer.utils import atomic_path

logger = logging.getLogger("uer")


def write_word_embeddings(table: torch.Tensor, vocab: Vocab, path: str) -> None:
    """The word2vec text format UER-py writes (loadable by gensim's ``load_word2vec_format`` and the
    Chinese-Word-Vectors tools): a header ``<tokens> <dim>``, then ``token v1 v2 ...`` per token in id
    order.  ``table``: (len(vocab), dim), padding rows already dropped.  Values are printed as
    Python floats of the float32 weights (as UER-py prints them), so they read back exactly."""
    if table.size(0) != len(vocab):
        raise ValueError(f"table has {table.size(0)} rows for a vocabulary of {len(vocab)} tokens")
    awkward = [t for t in vocab.tokens if not t or any(ch.isspace() for ch in t)]
    if awkward:
        logger.warning("%d tokens are empty or contain whitespace (e.g. %r); their lines cannot be split "
                       "unambiguously by word2vec readers", len(awkward), awkward[0])
    rows = table.float().cpu().numpy()
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(f"{rows.shape[0]} {rows.shape[1]}\n")
        for token, row in zip(vocab.tokens, rows):
            f.write(token + " " + " ".join(map(str, row.tolist())) + "\n")


def nearest_words(table: torch.Tensor, vocab: Vocab, word: str, topn: int,
                  exclude: Iterable[int] = ()) -> Optional[List[Tuple[str, float]]]:
    """The ``topn`` tokens whose rows of ``table`` (len(vocab), dim) are most cosine-similar to the
    row of ``word``; the word itself (every id holding that string) and ``exclude`` never count.
    None when ``word`` is not a token of the vocabulary."""
    if word not in vocab:
        return None
    query = vocab.token_to_id(word)
    sims = F.cosine_similarity(table[query].unsqueeze(0), table, dim=-1)
    skip = {i for i, t in enumerate(vocab.tokens) if t == word} | set(exclude)
    sims[list(skip)] = float("-inf")
    k = min(topn, len(vocab) - len(skip))
    if k <= 0:
        return []
    # Stable descending order: ties keep id order, so results are reproducible.
    order = torch.sort(sims, descending=True, stable=True).indices[:k]
    return [(vocab.tokens[i], float(sims[i])) for i in order.tolist()]


def format_neighbours(word: str, neighbours: Optional[List[Tuple[str, float]]]) -> str:
    """UER-py's block: ``Target word: w``, then ``token<TAB>similarity`` lines, then a blank line."""
    lines = [f"Target word: {word}"]
    if neighbours is None:
        lines.append("The target word is not in the vocabulary.")
    else:
        lines.extend(f"{token.strip()}\t{sim}" for token, sim in neighbours)
    return "\n".join(lines) + "\n\n"

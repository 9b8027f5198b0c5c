"""Whole-sentence chunking shared by the sentence-level seq2seq processors (bart, gsg)."""

from typing import List

Document = List[List[int]]   # sentences of token ids


def sentence_chunks(document: Document, max_tokens: int) -> List[Document]:
    """Consecutive sentences grouped while their tokens fit in ``max_tokens``; a sentence longer
    than that is cut into pieces of ``max_tokens`` first (UER-py drops such sentences, losing the
    text)."""
    pieces = [sentence[i:i + max_tokens] for sentence in document for i in range(0, len(sentence), max_tokens)]
    chunks: List[Document] = []
    current: Document = []
    length = 0
    for piece in pieces:
        if current and length + len(piece) > max_tokens:
            chunks.append(current)
            current, length = [], 0
        current.append(piece)
        length += len(piece)
    if current:
        chunks.append(current)
    return chunks

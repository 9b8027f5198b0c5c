"""Decoder-only LLM pretraining instances (``--data_processor llm_pretrain``).

Corpus: one document per line, plain text, or with ``--json_format_corpus`` (TencentPretrain's flag)
one JSON object per line whose ``"text"`` is the document; a line that is not valid JSON or has no
string ``"text"`` is one error naming the file and line.

Each document becomes ``[CLS] tokens [SEP]`` — the vocabulary's start (BOS, ``<s>`` in a LLaMA
vocabulary) and end (EOS, ``</s>``) tokens; the start token is the one ``scripts/generate_lm.py``
puts before every prompt.  All documents, in corpus order, form one token stream that is cut into
windows of ``seq_length + 1`` tokens which overlap by one token: the collator feeds the model
``window[:-1]`` and predicts ``window[1:]``, so every token of the stream after the first is a label
exactly once and there is no padding.  The last window holds what is left (at least 2 tokens: one
input, one label) and is the only one the collator pads; a remainder of one token was already the
previous window's last label and is not emitted again.

``--document_mask``: tokens attend only to earlier tokens of their own document.  The dataset then
stores a ``doc_start`` stream (1 where a document starts, one flag per src token); the collator turns
it into ``doc_ids`` (the attention mask: no key of another document is visible) and ``positions``
that restart at 0 at every document start (what absolute position embeddings see; rotary and ALiBi
positions are relative, so within one document they are unchanged by the restart), and no label is
taken across a boundary (the end token does not predict the next document's start token).  Without
it, attention runs causally across document boundaries, as in GPT-2/LLaMA pretraining.
"""

from typing import Callable, List

import numpy as np

from uer.data.documents import DOC_START_STREAM
from uer.data.processors.base import Doc, Instance, Processor, encode_ids
from uer.data.processors.jsonl import text_of_line
from uer.registry import PROCESSORS


class WindowPacker:
    """Packs documents (token arrays, in corpus order) into windows of ``seq_length + 1`` tokens with
    a stride of ``seq_length``: consecutive windows share one token, the label of the one and the
    first input of the next.  Same interface as ``base.Packer`` (``feed`` / ``flush`` / ``skip`` /
    ``chunk_len``), which the preprocessing loop drives.  ``make(tokens, doc_start)`` -> instance."""

    def __init__(self, seq_length: int, make: Callable[[np.ndarray, np.ndarray], Instance]):
        self.chunk_len = seq_length       # the stride, which --dup_factor rounds offset their start by
        self.window = seq_length + 1
        self.make = make
        self._tokens: List[np.ndarray] = []
        self._starts: List[np.ndarray] = []
        self._pending = 0
        self._skip = 0

    def skip(self, tokens: int) -> "WindowPacker":
        """Drop the first ``tokens`` tokens of the stream (a --dup_factor round's offset)."""
        self._skip = tokens
        return self

    def feed(self, document: np.ndarray) -> List[Instance]:
        document = np.asarray(document, dtype=np.int32)
        starts = np.zeros(len(document), dtype=np.int32)
        if len(document):
            starts[0] = 1
        if self._skip:
            dropped = min(self._skip, len(document))
            document, starts, self._skip = document[dropped:], starts[dropped:], self._skip - dropped
        self._tokens.append(document)
        self._starts.append(starts)
        self._pending += len(document)
        if self._pending < self.window:
            return []
        tokens, starts = np.concatenate(self._tokens), np.concatenate(self._starts)
        out = []
        begin = 0
        while len(tokens) - begin >= self.window:
            out.append(self.make(tokens[begin:begin + self.window], starts[begin:begin + self.window]))
            begin += self.chunk_len
        self._tokens, self._starts = [tokens[begin:]], [starts[begin:]]
        self._pending = len(tokens) - begin
        return out

    def flush(self) -> List[Instance]:
        """The last, shorter window (if it still has a label to predict)."""
        out = []
        if self._pending >= 2:
            out.append(self.make(np.concatenate(self._tokens), np.concatenate(self._starts)))
        self._tokens, self._starts, self._pending = [], [], 0
        return out


@PROCESSORS.register("llm_pretrain")
class LlmPretrainProcessor(Processor):
    name = "llm_pretrain"
    fields = ()
    corpus_format = "lines"
    specials = ("cls", "sep")      # start and end; padding falls back to the end token (LLaMA has none)
    extra_tokens = 1
    options = {"json_format_corpus": False, "document_mask": False}

    def __init__(self, vocab, seq_length: int, json_format_corpus: bool = False, document_mask: bool = False,
                 **kwargs):
        super().__init__(vocab, seq_length, **kwargs)
        self.json_format_corpus = bool(json_format_corpus)
        self.document_mask = bool(document_mask)
        # Instance attribute: the doc_start stream exists only when the attention is masked by it.
        self.streams = ("src", DOC_START_STREAM) if self.document_mask else ("src",)

    @property
    def sequential(self) -> bool:
        return True

    def meta(self) -> dict:
        return {"json_format_corpus": self.json_format_corpus, "document_mask": self.document_mask}

    def tokenize(self, docs: List[Doc], tokenizer) -> List[np.ndarray]:
        out = []
        for line_no, lines in docs:
            ids = encode_ids(tokenizer, text_of_line(self.corpus_path, line_no, lines[0], self.json_format_corpus))
            if ids:          # a JSON document with empty text adds nothing, as a blank line does
                out.append(np.asarray([self.cls_id, *ids, self.sep_id], dtype=np.int32))
        return out

    def segments(self, documents: List[np.ndarray]) -> List[np.ndarray]:
        return documents

    def packer(self) -> WindowPacker:
        if self.document_mask:
            return WindowPacker(self.seq_length, lambda src, starts: ({"src": src, DOC_START_STREAM: starts}, ()))
        return WindowPacker(self.seq_length, lambda src, starts: (src, ()))

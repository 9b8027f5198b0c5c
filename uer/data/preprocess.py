"""The preprocessing pipeline: raw corpus -> indexed dataset directory (:mod:`uer.data.dataset`).

Design, and why:

* **Streaming.**  The main process reads the corpus line by line and groups documents into blocks
  of ``docs_buffer_size``; at most ``2 * processes_num`` blocks are in flight, so memory depends on
  the block size, not on the corpus size.  (``Pool.imap`` would read its whole input eagerly.)
* **Deterministic.**  All randomness of a block comes from
  ``np.random.default_rng([seed, block_index, dup_round])`` and results are written in block order,
  so the same seed gives byte-identical output whatever ``processes_num`` is.
* **Workers tokenize and build instances**; the main process only writes them, plus the packing
  across documents for ``mlm --full_sentences`` and ``lm``, which must follow corpus order.
* **No partial output.**  :class:`DatasetWriter` writes into a temporary directory and publishes it
  atomically; every failure (including one inside a worker) aborts it.
"""

import collections
import contextlib
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from uer.data.dataset import META_FILE, DatasetWriter
from uer.data.packed import PackedInstances
from uer.data.processors import Doc, Instance, Processor, build_processor
from uer.data.word_segmentation import WORD_STREAM, segmenting, split_flags
from uer.data.text_files import open_text
from uer.errors import ConfigError, DataError
from uer.registry import PROCESSORS

logger = logging.getLogger(__name__)

Block = Tuple[int, List[Doc]]          # (block index, documents)
MASKING_DEFAULTS = {"dynamic_masking": True, "whole_word_masking": False, "span_masking": False,
                    "span_geo_prob": 0.2, "span_max_length": 10}
_PROGRESS_EVERY_BYTES = 1 << 16         # batch tqdm updates: one per line is measurable overhead


@dataclass
class _Options:
    seed: int
    dup_factor: int
    docs_buffer_size: int
    processes_num: int


def build_dataset(corpus_path: str, dataset_path: str, tokenizer, processor_name: str,
                  seq_length: int, processes_num: int = 1, seed: int = 7, dup_factor: int = 1,
                  short_seq_prob: float = 0.1, full_sentences: bool = False,
                  docs_buffer_size: int = 10000, masking: Optional[dict] = None,
                  show_progress: bool = True, tgt_seq_length: Optional[int] = None,
                  word_segmenter: Optional[str] = None, user_dict: Optional[str] = None,
                  processor_options: Optional[dict] = None) -> dict:
    """Tokenize ``corpus_path`` with ``tokenizer``, build ``processor_name`` instances and write
    them to the dataset directory ``dataset_path``.  Returns the dataset's meta (as in meta.json).

    ``masking`` holds the masking defaults recorded for pretraining (keys of
    ``MASKING_DEFAULTS``); masking is always dynamic, applied later by the training collator.
    With whole-word masking, word boundaries a character-level tokenizer cannot see come from
    ``word_segmenter`` (``uer.data.word_segmentation``) and are stored as the ``word_cont`` stream.
    ``processor_options``: the processor's own settings (``Processor.options``; e.g. the mt
    processor's ``tgt_tokenizer``); ``tgt_seq_length`` is handed to the processors that take it and
    recorded for every dataset (as UER-py accepts the flag for every processor).
    """
    opts = _Options(seed=seed, dup_factor=dup_factor, docs_buffer_size=docs_buffer_size,
                    processes_num=processes_num)
    _check_options(opts)
    corpus_path = _check_corpus(corpus_path)
    _check_dataset_path(dataset_path)
    options = dict(processor_options or {})
    if tgt_seq_length is not None and "tgt_seq_length" in PROCESSORS.get(processor_name, where="--data_processor").options:
        options["tgt_seq_length"] = tgt_seq_length
    processor = build_processor(processor_name, tokenizer.vocab, seq_length, short_seq_prob=short_seq_prob,
                                full_sentences=full_sentences, corpus_path=corpus_path, options=options)
    masking = masking_meta(masking)
    if masking["whole_word_masking"] and processor.seq2seq:
        raise ConfigError(f"--whole_word_masking is a masked-LM option; the {processor_name} processor's noising "
                          "does not use it — drop the flag")
    tokenizer, boundaries = segmenting(tokenizer, masking["whole_word_masking"], word_segmenter, user_dict)
    meta = {"processor": processor_name, "seq_length": seq_length, "tgt_seq_length": tgt_seq_length,
            "tokenizer": tokenizer.describe(), "seed": seed, "dup_factor": dup_factor,
            "full_sentences": full_sentences, "short_seq_prob": short_seq_prob,
            "corpus_path": corpus_path, "masking": masking}
    meta.update(processor.meta())
    if processor.noising():
        meta["noising"] = processor.noising()
    if boundaries is not None:
        meta["word_boundaries"] = boundaries

    start = time.time()
    streams = list(processor.streams) + ([WORD_STREAM] if boundaries is not None else [])
    # The target side may have its own vocabulary (mt): its ids are range-checked against that one.
    tgt_vocab_size = meta.get("tgt_tokenizer", {}).get("vocab_size")
    writer = DatasetWriter(dataset_path, streams=streams, fields=list(processor.fields),
                           vocab_size=len(tokenizer.vocab), meta=meta,
                           stream_vocab_sizes={"tgt": tgt_vocab_size} if tgt_vocab_size else None)
    try:
        documents = _run(corpus_path, processor, tokenizer, writer, opts, show_progress)
        if documents == 0:
            raise DataError(f"corpus {corpus_path} is empty (it has only blank lines); "
                            "nothing to preprocess")
        writer.extra_meta["documents"] = documents
    except BaseException:
        writer.abort()
        raise
    result = writer.close()
    logger.info("preprocess: %d documents, %d instances, %d tokens in %.1f s -> %s",
                documents, result["instances"], result["tokens"], time.time() - start, writer.path)
    return result


def masking_meta(masking: Optional[dict]) -> dict:
    """The user's masking flags merged over the defaults, validated."""
    masking = dict(masking or {})
    unknown = sorted(set(masking) - set(MASKING_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown masking option(s) {unknown}; valid: {sorted(MASKING_DEFAULTS)}")
    if masking.get("dynamic_masking", True) is not True:
        raise ConfigError("static masking is not supported: uer always masks dynamically in the "
                          "training collator (drop dynamic_masking=False)")
    merged = {**MASKING_DEFAULTS, **masking}
    if not 0.0 < float(merged["span_geo_prob"]) <= 1.0:
        raise ConfigError(f"--span_geo_prob {merged['span_geo_prob']} must be in (0, 1]")
    if int(merged["span_max_length"]) < 1:
        raise ConfigError(f"--span_max_length {merged['span_max_length']} must be >= 1")
    return {"dynamic_masking": True, "whole_word_masking": bool(merged["whole_word_masking"]),
            "span_masking": bool(merged["span_masking"]), "span_geo_prob": float(merged["span_geo_prob"]),
            "span_max_length": int(merged["span_max_length"])}


# -- validation (before anything is created on disk) --------------------------------------------
def _check_options(opts: _Options) -> None:
    for flag, value in (("--processes_num", opts.processes_num), ("--dup_factor", opts.dup_factor),
                        ("--docs_buffer_size", opts.docs_buffer_size)):
        if int(value) < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")


def _check_corpus(corpus_path: str) -> str:
    path = os.path.abspath(corpus_path)
    if not os.path.exists(path):
        raise DataError(f"--corpus_path {corpus_path} does not exist")
    if not os.path.isfile(path):
        raise DataError(f"--corpus_path {corpus_path} is not a file")
    return path


def _check_dataset_path(dataset_path: str) -> None:
    """Refuse paths the writer would fail on at the very end, or would silently replace."""
    if os.path.exists(dataset_path) and not os.path.isdir(dataset_path):
        raise DataError(f"--dataset_path {dataset_path} exists and is a file, not a dataset "
                        "directory; remove it or choose another path")
    if os.path.isdir(dataset_path) and os.listdir(dataset_path) \
            and not os.path.isfile(os.path.join(dataset_path, META_FILE)):
        # A finished dataset is replaced on success; any other non-empty directory is not ours.
        raise DataError(f"--dataset_path {dataset_path} is a non-empty directory that is not a uer "
                        "dataset; choose another path so its contents are not replaced")


# -- reading ------------------------------------------------------------------------------------
def _read_lines(path: str, progress: Callable[[int], None]) -> Iterator[Tuple[int, str]]:
    """(line number, text without line ending); progress gets the bytes read, in batches."""
    reported = 0
    with open_text(path, f"--corpus_path {path}") as f:
        for text in f:
            if f.offset - reported >= _PROGRESS_EVERY_BYTES:
                progress(f.offset - reported)
                reported = f.offset
            yield f.line, text.rstrip("\r\n")
        progress(f.offset - reported)


def _read_documents(lines: Iterator[Tuple[int, str]], corpus_format: str) -> Iterator[Doc]:
    """Group lines into documents: per blank-line-separated paragraph ("documents") or per
    non-blank line ("lines")."""
    if corpus_format == "lines":
        for line_no, text in lines:
            if text.strip():
                yield line_no, [text]
        return
    first, sentences = 0, []
    for line_no, text in lines:
        if text.strip():
            first = first or line_no
            sentences.append(text.strip())
        elif sentences:
            yield first, sentences
            first, sentences = 0, []
    if sentences:
        yield first, sentences


def _read_blocks(docs: Iterator[Doc], size: int, counter: List[int]) -> Iterator[Block]:
    """Blocks of ``size`` documents; ``counter[0]`` counts the documents read."""
    block: List[Doc] = []
    index = 0
    for doc in docs:
        counter[0] += 1
        block.append(doc)
        if len(block) == size:
            yield index, block
            index, block = index + 1, []
    if block:
        yield index, block


# -- workers --------------------------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(processor: Processor, tokenizer, seed: int, dup_factor: int) -> None:
    """Runs once per worker process (or in-process), so the tokenizer is not sent per block."""
    _WORKER.update(processor=processor, tokenizer=tokenizer, seed=seed, dup_factor=dup_factor)


def _process_block(block: Block) -> Tuple[list, Dict[str, int]]:
    """Tokenize a block once, then build its instances for every dup round (each with its own
    RNG); sequential processors return token segments for the main process to pack instead.
    Also returns the examples the processor set aside, by reason (``Tokenized.skipped``)."""
    index, docs = block
    processor: Processor = _WORKER["processor"]
    tokenized = processor.tokenize(docs, _WORKER["tokenizer"])
    skipped = dict(getattr(tokenized, "skipped", {}))
    if processor.sequential:
        return processor.segments(tokenized), skipped
    instances: List[Instance] = []
    for dup_round in range(_WORKER["dup_factor"]):
        rng = np.random.default_rng([_WORKER["seed"], index, dup_round])
        instances.extend(processor.build(tokenized, rng))
    return PackedInstances.pack(instances) or instances, skipped


def _map_in_order(blocks: Iterator[Block], init_args: tuple, processes_num: int) -> Iterator[list]:
    """``_process_block`` over ``blocks``, results in block order, at most ``2 * processes_num``
    blocks in flight.  A worker's exception is re-raised here (and a killed worker raises
    BrokenProcessPool) instead of hanging.

    The pool uses the platform's default start method (fork on Linux before Python 3.14): spawn
    would re-import the caller's ``__main__``, breaking scripts that call ``build_dataset``
    without an ``if __name__ == "__main__"`` guard."""
    if processes_num == 1:
        _init_worker(*init_args)
        try:
            for block in blocks:
                yield _process_block(block)
        finally:
            _WORKER.clear()   # do not keep the tokenizer alive in the caller's process
        return
    executor = ProcessPoolExecutor(max_workers=processes_num, initializer=_init_worker,
                                   initargs=init_args)
    pending: collections.deque = collections.deque()
    try:
        for block in blocks:
            pending.append(executor.submit(_process_block, block))
            if len(pending) >= 2 * processes_num:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


# -- main loop ------------------------------------------------------------------------------------
class _Progress(tqdm):
    """tqdm without its monitor thread: worker processes are forked after the bar exists, and
    forking a multi-threaded process risks deadlocks (Python 3.12+ warns about it)."""

    monitor_interval = 0


def _run(corpus_path: str, processor: Processor, tokenizer, writer: DatasetWriter,
         opts: _Options, show_progress: bool) -> int:
    """Stream the corpus through the workers into ``writer``; return the number of documents."""
    counter = [0]
    bar = _Progress(total=os.path.getsize(corpus_path), unit="B", unit_scale=True, unit_divisor=1024,
               desc="preprocess", file=sys.stderr, disable=not show_progress, dynamic_ncols=True)
    lines = _read_lines(corpus_path, bar.update)
    blocks = _read_blocks(_read_documents(lines, processor.corpus_format), opts.docs_buffer_size, counter)
    results = _map_in_order(blocks, (processor, tokenizer, opts.seed, opts.dup_factor), opts.processes_num)
    # One packer per dup round, so each round's stream is packed exactly as a single round would be.
    packers = [processor.packer() for _ in range(opts.dup_factor)] if processor.sequential else []
    for dup_round, packer in enumerate(packers):
        packer.skip(dup_round * packer.chunk_len // opts.dup_factor)
    skipped: Dict[str, int] = {}
    with bar, contextlib.closing(results):
        for result, block_skipped in results:
            for reason, count in block_skipped.items():
                skipped[reason] = skipped.get(reason, 0) + count
            if packers:
                for packer in packers:
                    _write(writer, (inst for segment in result for inst in packer.feed(segment)))
            else:
                _write(writer, result)
            bar.set_postfix(docs=counter[0], instances=writer.instances, refresh=False)
        for packer in packers:
            _write(writer, packer.flush())
    if skipped:
        writer.extra_meta["skipped"] = skipped
        logger.warning("preprocess: %d example(s) of %s set aside by the %s processor: %s (see its documentation "
                       "for the rule; recorded in meta.json as \"skipped\")", sum(skipped.values()), corpus_path,
                       processor.name, ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items())))
    return counter[0]


def _write(writer: DatasetWriter, instances) -> None:
    if isinstance(instances, PackedInstances) and writer.streams == ["src"]:
        writer.add_packed(instances.tokens, instances.lengths, instances.fields)
        return
    split = WORD_STREAM in writer.streams
    for src, fields in instances:
        if isinstance(src, dict):  # several streams (seq2seq processors)
            writer.add(src, fields)
        elif split:                 # flagged ids (uer.data.word_segmentation): ids + boundaries
            src, word_cont = split_flags(src)
            writer.add({"src": src, WORD_STREAM: word_cont}, fields)
        else:
            writer.add({"src": src}, fields)

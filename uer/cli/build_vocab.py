"""build_vocab: train a SentencePiece model on a corpus and derive a WordPiece-style vocab.txt.

Two files come out:

* ``--spm_model_path``: the SentencePiece model, usable with ``--spm_model_path`` everywhere;
* ``--vocab_path``: a BERT-style vocabulary made from the same pieces ("▁word" -> "word", other
  pieces -> "##piece", plus every character in both forms), usable with ``--tokenizer bert``.

Both are written atomically (built in a temporary directory, then renamed into place), so a failed
run leaves neither file behind nor half of one.  Training is deterministic for a given corpus,
options and ``--seed``.
"""

import argparse
import io
import logging
import os
import re
import shutil
import sys
import tempfile
import unicodedata
from typing import Iterable, List, Optional, Tuple

from uer.data.vocab import BERT_SPECIALS, SPM_WORD_START, WORDPIECE_PREFIX, Vocab
from uer.cli.common import cli_entry, str_to_bool
from uer.cli.output_paths import Output, refuse_outputs_over_inputs
from uer.utils import atomic_path
from uer.errors import DataError

logger = logging.getLogger("uer")

# Our five specials, fixed at the front of both outputs: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4.
SPECIALS: List[str] = [BERT_SPECIALS.pad, BERT_SPECIALS.unk, BERT_SPECIALS.cls, BERT_SPECIALS.sep,
                       BERT_SPECIALS.mask]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train a SentencePiece model on a corpus and write it together with a "
                    "WordPiece-style vocab.txt derived from its pieces.")
    p.add_argument("--corpus_path", required=True, nargs="+",
                   help="Plain-text corpus file(s), one sentence or document per line.")
    p.add_argument("--vocab_path", required=True, help="Output WordPiece-style vocabulary (vocab.txt).")
    p.add_argument("--spm_model_path", required=True, help="Output SentencePiece model (.model).")
    p.add_argument("--vocab_size", type=int, default=8000,
                   help="Number of SentencePiece pieces, specials included (default 8000).")
    p.add_argument("--model_type", choices=["unigram", "bpe"], default="unigram",
                   help="SentencePiece algorithm (default unigram).")
    p.add_argument("--character_coverage", type=float, default=0.9995,
                   help="Fraction of characters the pieces must cover (default 0.9995; use 1.0 for "
                        "small alphabets, 0.9995 for Chinese/Japanese).")
    p.add_argument("--input_sentence_size", type=int, default=1000000,
                   help="Train on at most this many lines, sampled with --seed (default 1000000).")
    p.add_argument("--do_lower_case", dest="do_lower_case", type=str_to_bool, nargs="?", const=True,
                   default=True, help="Lower-case the corpus before training (default true; "
                   "'--do_lower_case false' or --no_lower_case keeps case).")
    p.add_argument("--no_lower_case", dest="do_lower_case", action="store_false",
                   help="Keep case (for cased vocabularies).")
    p.add_argument("--seed", type=int, default=7, help="Seed of SentencePiece's sampling (default 7).")
    return p


def _clean_line(line: str, do_lower_case: bool) -> str:
    """Prepare a corpus line the way BertTokenizer will see text, so the pieces (and hence
    vocab.txt) are made of the characters BertTokenizer actually produces: control characters
    dropped, any whitespace a plain space (SentencePiece only treats " " as a word boundary), NFC."""
    out = []
    for ch in line:
        cat = unicodedata.category(ch)
        if ch in "\t\n\r" or cat == "Zs":
            out.append(" ")
        elif ch == "\ufffd" or cat.startswith("C"):
            continue
        else:
            out.append(ch)
    text = unicodedata.normalize("NFC", "".join(out)).strip()
    return text.lower() if do_lower_case else text


def prepare_corpus(corpus_paths: Iterable[str], out_path: str, do_lower_case: bool) -> Tuple[int, int]:
    """Stream the corpus into one cleaned (and optionally lower-cased) training file.
    Returns (non-empty lines, characters)."""
    lines = chars = 0
    with open(out_path, "w", encoding="utf-8", newline="\n") as out:
        for path in corpus_paths:
            try:
                with open(path, "r", encoding="utf-8") as f:
                    for raw in f:
                        text = _clean_line(raw, do_lower_case)
                        if text:
                            out.write(text + "\n")
                            lines += 1
                            chars += len(text)
            except UnicodeDecodeError as e:
                raise DataError(f"--corpus_path {path} is not valid UTF-8 (near byte {e.start} of a "
                                f"line); convert it to UTF-8") from None
    return lines, chars


def _train_spm(input_path: str, args: argparse.Namespace, corpus_desc: str) -> bytes:
    """Train on the prepared corpus file and return the serialized model.

    The corpus is fed as an iterator and the model comes back through ``model_writer`` rather
    than via ``input=``/``model_prefix=`` files: SentencePiece records those paths inside the
    model, so two identical runs would give models that differ in bytes (and in fingerprint)
    only because their temporary directories had different names.
    """
    import sentencepiece as spm

    # Sampling of --input_sentence_size lines and shuffling use this global generator.
    spm.set_random_generator_seed(args.seed)
    model = io.BytesIO()
    try:
        with open(input_path, "r", encoding="utf-8") as f:
            spm.SentencePieceTrainer.train(
                sentence_iterator=(line.rstrip("\n") for line in f),
                model_writer=model,
                vocab_size=args.vocab_size,
                model_type=args.model_type,
                character_coverage=args.character_coverage,
                input_sentence_size=args.input_sentence_size,
                shuffle_input_sentence=True,
                # The corpus copy is already cleaned like BertTokenizer's input; spm's default
                # NFKC would fold e.g. full-width "，" into "," and vocab.txt would then lack
                # characters that BertTokenizer meets in the raw text.
                normalization_rule_name="identity",
                # Long documents (one per line) would be skipped at spm's 4192-byte default.
                max_sentence_length=1 << 16,
                pad_id=0, pad_piece=BERT_SPECIALS.pad,
                unk_id=1, unk_piece=BERT_SPECIALS.unk,
                bos_id=-1, eos_id=-1,
                user_defined_symbols=[BERT_SPECIALS.cls, BERT_SPECIALS.sep, BERT_SPECIALS.mask],
                num_threads=2,
                minloglevel=2,  # spm's per-iteration log is noise here; we print our own summary
            )
    except RuntimeError as e:
        raise DataError(_explain_spm_error(str(e), args, corpus_desc)) from None
    return model.getvalue()


def _explain_spm_error(message: str, args: argparse.Namespace, corpus_desc: str) -> str:
    """Rephrase SentencePiece's C++ check failures as what to change on the command line."""
    too_high = re.search(r"Vocabulary size too high.*?<=\s*(\d+)", message)
    if too_high:
        return (f"--vocab_size {args.vocab_size} is too large for corpus {corpus_desc}: SentencePiece "
                f"can make at most {too_high.group(1)} pieces from it; lower --vocab_size (to at most "
                f"{too_high.group(1)}) or give a larger corpus")
    too_small = re.search(r"smaller than required_chars\.\s*(\d+)\s*vs\s*(\d+)", message)
    if too_small:
        return (f"--vocab_size {args.vocab_size} is too small for corpus {corpus_desc}: covering "
                f"{args.character_coverage} of its characters needs {too_small.group(2)} pieces; "
                f"raise --vocab_size or lower --character_coverage")
    return f"SentencePiece training on {corpus_desc} failed: {message}"


def wordpiece_tokens_from_pieces(pieces: Iterable[str]) -> List[str]:
    """Turn SentencePiece pieces into a vocabulary BertTokenizer can use.

    "▁word" starts a word -> "word"; any other piece continues one -> "##piece".  Every character
    seen is added in both forms, so BertTokenizer's greedy matcher can always fall back to single
    characters instead of giving up on the whole word as [UNK].
    """
    tokens: List[str] = list(SPECIALS)
    seen = set(tokens)
    chars: List[str] = []
    chars_seen = set()

    def add(token: str) -> None:
        if token and token not in seen:
            seen.add(token)
            tokens.append(token)

    for piece in pieces:
        if piece in SPECIALS:
            continue
        word = piece[len(SPM_WORD_START):] if piece.startswith(SPM_WORD_START) else None
        body = word if word is not None else piece
        if not body or SPM_WORD_START in body:
            # bare "▁", or a piece spanning a word boundary: BertTokenizer never sees either.
            continue
        add(body if word is not None else WORDPIECE_PREFIX + body)
        for ch in body:
            if ch not in chars_seen:
                chars_seen.add(ch)
                chars.append(ch)
    for ch in chars:
        add(ch)
        add(WORDPIECE_PREFIX + ch)
    return tokens


def _publish(src: str, dst: str) -> None:
    """Copy ``src`` next to ``dst`` and rename it into place: ``dst`` is never half-written, and
    the rename is atomic even when the temporary directory is on another filesystem."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.vocab_size <= len(SPECIALS):
        parser.error(f"--vocab_size must be larger than the {len(SPECIALS)} special tokens")
    if not 0.0 < args.character_coverage <= 1.0:
        parser.error("--character_coverage must be in (0, 1]")
    if args.input_sentence_size <= 0:
        parser.error("--input_sentence_size must be positive")
    if os.path.abspath(args.vocab_path) == os.path.abspath(args.spm_model_path):
        parser.error("--vocab_path and --spm_model_path must be different files")
    for path in args.corpus_path:
        if not os.path.isfile(path):
            raise DataError(f"--corpus_path {path} does not exist or is not a file; pass a plain-text "
                            f"corpus, one sentence or document per line")


@cli_entry
def main(argv: Optional[List[str]] = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    refuse_outputs_over_inputs(args, [Output("vocab_path"), Output("spm_model_path")])
    _check_args(parser, args)
    corpus_desc = ", ".join(args.corpus_path)

    # Everything is built in a private temporary directory; outputs are published only at the end.
    workdir = tempfile.mkdtemp(prefix="uer-build-vocab-")
    try:
        corpus_copy = os.path.join(workdir, "corpus.txt")
        logger.info("reading %s%s", corpus_desc, " (lower-casing)" if args.do_lower_case else "")
        n_lines, n_chars = prepare_corpus(args.corpus_path, corpus_copy, args.do_lower_case)
        if n_lines == 0:
            raise DataError(f"--corpus_path {corpus_desc} has no text (every line is empty); pass a "
                            f"corpus with one sentence or document per line")
        logger.info("training SentencePiece %s, vocab_size %d, on %d lines (%d characters)",
                    args.model_type, args.vocab_size, n_lines, n_chars)
        model_bytes = _train_spm(corpus_copy, args, corpus_desc)
        model_tmp = os.path.join(workdir, "spm.model")
        with open(model_tmp, "wb") as f:
            f.write(model_bytes)

        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_proto=model_bytes)
        pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
        vocab = Vocab(wordpiece_tokens_from_pieces(pieces), path=args.vocab_path)
        vocab_tmp = os.path.join(workdir, "vocab.txt")
        vocab.save(vocab_tmp)

        spm_existed = os.path.exists(args.spm_model_path)
        _publish(model_tmp, args.spm_model_path)
        try:
            _publish(vocab_tmp, args.vocab_path)
        except BaseException:
            # Do not leave a model without its vocab.txt behind (an older model we replaced is gone
            # either way; a new one we created is removed).
            if not spm_existed and os.path.exists(args.spm_model_path):
                os.remove(args.spm_model_path)
            raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"build_vocab: {len(pieces)} SentencePiece pieces -> {args.spm_model_path}; "
          f"{len(vocab)} WordPiece tokens -> {args.vocab_path} "
          f"(from {n_lines} lines, lower_case={args.do_lower_case})")
    sys.stdout.flush()
    return {"spm_pieces": len(pieces), "vocab_size": len(vocab), "lines": n_lines,
            "vocab_path": args.vocab_path, "spm_model_path": args.spm_model_path}

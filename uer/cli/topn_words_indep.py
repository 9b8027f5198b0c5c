"""scripts/topn_words_indep.py (UER-py's scripts/topn_words_indep.py): nearest neighbours of words
by the cosine similarity of their input (context-independent) word embeddings.

    python scripts/topn_words_indep.py --load_model_path models/google_zh_model.bin \
        --vocab_path models/google_zh_vocab.txt --test_path target_words.txt --topn 15

Input: one word a line (the first whitespace-separated field, as UER-py reads it); each must be a
token of the vocabulary.  Output (stdout, and --prediction_path when given), as UER-py prints it:
``Target word: w``, then ``token<TAB>cosine`` for the top n tokens, then a blank line.  The word
itself is left out by id (UER-py drops whatever ranks first); padding rows are never candidates.
"""

import argparse
import logging
from typing import List, Optional

from uer.cli.common import cli_entry
from uer.cli.tool_args import emit, add_config_arg, add_load_model_arg, add_vocab_args, vocab_from_args
from uer.errors import ConfigError
from uer.cli.output_paths import Output, refuse_outputs_over_inputs
from uer.tools.common import word_embedding_table
from uer.tools.embeddings import format_neighbours, nearest_words
from uer.data.text_files import read_test_lines

logger = logging.getLogger("uer")


def read_words(path: str) -> List[str]:
    return read_test_lines(path, "target word", lambda line: line.split()[0])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Nearest neighbours of words by their input word embeddings.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_load_model_arg(p)
    add_vocab_args(p)
    add_config_arg(p, composite_only=True)
    p.add_argument("--test_path", required=True, help="Target words, one a line.")
    p.add_argument("--topn", type=int, default=15, help="Neighbours per word.")
    p.add_argument("--prediction_path", default=None, help="Also write the output to this file.")
    return p


@cli_entry
def main(argv: Optional[List[str]] = None) -> str:
    args = build_parser().parse_args(argv)
    if args.topn < 1:
        raise ConfigError(f"--topn must be ≥ 1, got {args.topn}")
    refuse_outputs_over_inputs(args, [Output("prediction_path")])
    vocab = vocab_from_args(args)
    words = read_words(args.test_path)
    table = word_embedding_table(args.load_model_path, len(vocab), vocab.path or "", args.config_path)
    text = "".join(format_neighbours(w, nearest_words(table, vocab, w, args.topn)) for w in words)
    return emit(text, args.prediction_path)


if __name__ == "__main__":
    main()

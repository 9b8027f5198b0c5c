"""scripts/extract_embeddings.py (UER-py's scripts/extract_embeddings.py): the word embedding table
of a checkpoint as a text file.

    python scripts/extract_embeddings.py --load_model_path models/google_zh_model.bin \
        --vocab_path models/google_zh_vocab.txt --word_embedding_path embeddings.txt

Output (word2vec text format, as UER-py): ``<tokens> <dim>`` then ``token v1 v2 ...`` per token of the
vocabulary in id order -- only the real vocabulary: the rows uer adds to reach a multiple of 64 are
left out.  A composite (ELECTRA) checkpoint gives its discriminator's table (read through the
config beside it, or --config_path).
"""

import argparse
import logging
from typing import List, Optional

import torch

from uer.cli.common import cli_entry
from uer.cli.tool_args import add_config_arg, add_load_model_arg, add_vocab_args, vocab_from_args
from uer.cli.output_paths import Output, refuse_outputs_over_inputs
from uer.tools.common import word_embedding_table
from uer.tools.embeddings import write_word_embeddings

logger = logging.getLogger("uer")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Write a checkpoint's word embeddings as 'token v1 v2 ...' text.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_load_model_arg(p)
    add_vocab_args(p)
    add_config_arg(p, composite_only=True)
    p.add_argument("--word_embedding_path", required=True, help="Output text file.")
    return p


@cli_entry
def main(argv: Optional[List[str]] = None) -> torch.Tensor:
    args = build_parser().parse_args(argv)
    refuse_outputs_over_inputs(args, [Output("word_embedding_path")])
    vocab = vocab_from_args(args)
    table = word_embedding_table(args.load_model_path, len(vocab), vocab.path or "", args.config_path)
    write_word_embeddings(table, vocab, args.word_embedding_path)
    logger.info("%d x %d word embeddings -> %s", table.size(0), table.size(1), args.word_embedding_path)
    return table


if __name__ == "__main__":
    main()

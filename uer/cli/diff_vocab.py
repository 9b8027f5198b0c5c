"""scripts/diff_vocab.py (UER-py's scripts/diff_vocab.py): compare two vocabularies.

    python scripts/diff_vocab.py --vocab_1 models/google_zh_vocab.txt --vocab_2 my_vocab.txt \
        [--output_path diff.txt]

Prints UER-py's summary (both sizes, |vocab_1 - vocab_2|, |vocab_2 - vocab_1|, |vocab_1 & vocab_2|).
``--output_path`` also writes the differing tokens, one a line: ``<<TAB>token`` for a token only in
vocab_1, ``><TAB>token`` for one only in vocab_2, each group in its file's order.
"""

import argparse
from typing import List, Optional

from uer.cli.common import cli_entry
from uer.data.vocab import Vocab
from uer.cli.output_paths import Output, refuse_outputs_over_inputs
from uer.tools.diff_vocab import VocabDiff, diff_vocab
from uer.utils import atomic_write_text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Compare two vocabularies (one token per line).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--vocab_1", required=True, help="First vocabulary file.")
    p.add_argument("--vocab_2", required=True, help="Second vocabulary file.")
    p.add_argument("--output_path", default=None,
                   help="Also write the differing tokens here ('<\\ttoken': only in vocab_1, "
                        "'>\\ttoken': only in vocab_2).")
    return p


@cli_entry
def main(argv: Optional[List[str]] = None) -> VocabDiff:
    args = build_parser().parse_args(argv)
    refuse_outputs_over_inputs(args, [Output("output_path")])
    vocab_1, vocab_2 = Vocab.load(args.vocab_1), Vocab.load(args.vocab_2)
    diff = diff_vocab(vocab_1, vocab_2)
    print(diff.summary(args.vocab_1, args.vocab_2), end="")
    if args.output_path:
        atomic_write_text(args.output_path, diff.listing())
    return diff


if __name__ == "__main__":
    main()

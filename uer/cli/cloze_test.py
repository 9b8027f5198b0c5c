"""scripts/cloze_test.py (UER-py's scripts/cloze_test.py): fill-mask top-n with a masked-LM checkpoint.

    python scripts/cloze_test.py --load_model_path models/bert.bin --vocab_path vocab.txt \
        --test_path sentences.txt --prediction_path cloze.txt --topn 10

Input: one sentence a line.  A line that writes the mask token (``[MASK]``) is predicted at every
mask; a line without one gets one random token masked (UER-py's behaviour; --seed makes it
repeatable).  Output, per non-blank line, UER-py's record:

    [CLS]我[MASK]北京[SEP]
    Predicted answer: 爱 在 去 ...          (one such line per masked position, best first)
    Correct answer: 爱                       (only for a randomly masked token)
    <blank line>

The config is the one saved beside the checkpoint (or --config_path); the checkpoint must have an
"mlm" target and is loaded strictly.
"""

import argparse
import logging
import random
from typing import List, Optional

from uer.cli.common import add_tokenizer_args, cli_entry, tokenizer_from_args
from uer.cli.model_args import add_model_override_args, model_overrides
from uer.cli.tool_args import check_minimums, add_config_arg, add_load_model_arg
from uer.errors import ConfigError, DataError
from uer.tools.cloze import format_item, predict_topn, prepare_item
from uer.cli.output_paths import Output, refuse_outputs_over_inputs
from uer.tools.common import load_mlm_model, load_model_config
from uer.training.device import pick_device
from uer.utils import atomic_write_text
from uer.data.text_files import read_test_lines

logger = logging.getLogger("uer")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Fill-mask top-n predictions of a masked-LM checkpoint.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_load_model_arg(p)
    add_config_arg(p)
    add_tokenizer_args(p)
    p.add_argument("--test_path", required=True, help="One sentence a line, [MASK] where to predict.")
    p.add_argument("--prediction_path", required=True, help="Output text file.")
    p.add_argument("--topn", type=int, default=10, help="Predictions per masked position.")
    p.add_argument("--seq_length", type=int, default=None,
                   help="Tokens per sentence, [CLS] and [SEP] included; default min(128, the model's max_seq_length).")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--seed", type=int, default=7, help="Chooses the token masked in lines without [MASK].")
    p.add_argument("--device", default="auto")
    add_model_override_args(p)
    return p


def read_lines(path: str) -> List[str]:
    return read_test_lines(path, "sentence")


@cli_entry
def main(argv: Optional[List[str]] = None) -> str:
    args = build_parser().parse_args(argv)
    check_minimums(("--topn", args.topn, 1), ("--batch_size", args.batch_size, 1),
                   ("--seq_length", 3 if args.seq_length is None else args.seq_length, 3))
    refuse_outputs_over_inputs(args, [Output("prediction_path")])
    tokenizer = tokenizer_from_args(args)
    vocab = tokenizer.vocab
    vocab.require(("cls", "sep", "mask"), purpose="the cloze test ([CLS] sentence [SEP] with masks)")
    config, config_path = load_model_config(args.load_model_path, args.config_path, len(vocab),
                                            args.spm_model_path or args.vocab_path or args.tokenizer,
                                            model_overrides(args))
    args.seq_length = args.seq_length or min(128, config.max_seq_length)
    if args.seq_length > config.max_seq_length:
        raise ConfigError(f"--seq_length {args.seq_length} exceeds the model's max_seq_length {config.max_seq_length}")
    device = pick_device(args.device)
    model = load_mlm_model(args.load_model_path, config).to(device)
    rng = random.Random(args.seed)
    items = [item for item in (prepare_item(tokenizer, line, args.seq_length, rng)
                               for line in read_lines(args.test_path)) if item is not None]
    if not items:
        raise DataError(f"--test_path {args.test_path}: no line has a token the tokenizer keeps")
    pad_id = vocab.pad_id if vocab.pad_id is not None else 0
    predictions = predict_topn(model, items, args.topn, args.batch_size, pad_id, device)
    text = "".join(format_item(item, top, vocab) for item, top in zip(items, predictions))
    atomic_write_text(args.prediction_path, text)
    logger.info("%d sentences, %d masked positions (config %s) -> %s", len(items),
                sum(len(i.positions) for i in items), config_path, args.prediction_path)
    return text


if __name__ == "__main__":
    main()

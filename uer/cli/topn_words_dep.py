"""scripts/topn_words_dep.py (UER-py's scripts/topn_words_dep.py): context-dependent nearest
neighbours -- the words that, substituted for the target word in its sentence, leave the encoder's
hidden state at that position most cosine-similar (see uer/tools/context_neighbours.py).

    python scripts/topn_words_dep.py --load_model_path models/bert.bin --vocab_path vocab.txt \
        --cand_vocab_path vocab.txt --test_path target_words_with_sentences.txt \
        --batch_size 256 --seq_length 32 --tokenizer bert

Input: ``word<TAB>sentence`` per line (other lines are skipped, as in UER-py); the word must be one
token of the vocabulary and occur in the tokenized sentence (its first occurrence is used).
Output (stdout, and --prediction_path when given), UER-py's lines per record:
``Original sentence: ...``, ``Target word: ...``, then ``token<TAB>cosine`` for the top n candidates.
"""

import argparse
import logging
from typing import List, Optional

from uer.cli.common import add_tokenizer_args, cli_entry, tokenizer_from_args
from uer.cli.model_args import add_model_override_args, model_overrides
from uer.cli.tool_args import check_minimums, emit, add_config_arg, add_load_model_arg
from uer.data.vocab import Vocab
from uer.errors import ConfigError
from uer.cli.output_paths import Output, refuse_outputs_over_inputs
from uer.tools.common import load_backbone, load_model_config
from uer.tools.context_neighbours import (candidate_ids, format_record, substitution_similarities,
                                          target_token, top_candidates)
from uer.training.device import pick_device
from uer.data.text_files import read_test_lines

logger = logging.getLogger("uer")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Context-dependent nearest neighbours of words in sentences.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_load_model_arg(p)
    add_config_arg(p)
    add_tokenizer_args(p)
    p.add_argument("--cand_vocab_path", default=None,
                   help="Candidate words, one a line; default: every token of the model's vocabulary. "
                        "A smaller list is faster.")
    p.add_argument("--test_path", required=True, help="word<TAB>sentence per line.")
    p.add_argument("--topn", type=int, default=15, help="Neighbours per word.")
    p.add_argument("--batch_size", type=int, default=64, help="Candidate sentences per forward pass.")
    p.add_argument("--seq_length", type=int, default=None,
                   help="Tokens per sentence, [CLS] and [SEP] included; default min(128, the model's max_seq_length).")
    p.add_argument("--prediction_path", default=None, help="Also write the output to this file.")
    p.add_argument("--device", default="auto")
    add_model_override_args(p)
    return p


def read_pairs(path: str) -> List[List[str]]:
    def pair(line: str):
        fields = line.strip().split("\t")
        return fields if len(fields) == 2 else None
    return read_test_lines(path, "word<TAB>sentence", pair)


@cli_entry
def main(argv: Optional[List[str]] = None) -> str:
    args = build_parser().parse_args(argv)
    check_minimums(("--topn", args.topn, 1), ("--batch_size", args.batch_size, 1),
                   ("--seq_length", 3 if args.seq_length is None else args.seq_length, 3))
    refuse_outputs_over_inputs(args, [Output("prediction_path")])
    tokenizer = tokenizer_from_args(args)
    vocab = tokenizer.vocab
    vocab.require(("cls", "sep"), purpose="encoding sentences as [CLS] sentence [SEP]")
    candidates = Vocab.load(args.cand_vocab_path).tokens if args.cand_vocab_path else vocab.tokens
    pairs = read_pairs(args.test_path)
    config, _ = load_model_config(args.load_model_path, args.config_path, len(vocab),
                                  args.spm_model_path or args.vocab_path or args.tokenizer, model_overrides(args))
    args.seq_length = args.seq_length or min(128, config.max_seq_length)
    if args.seq_length > config.max_seq_length:
        raise ConfigError(f"--seq_length {args.seq_length} exceeds the model's max_seq_length {config.max_seq_length}")
    device = pick_device(args.device)
    model = load_backbone(args.load_model_path, config).to(device)
    records = []
    for word, sentence in pairs:
        token = target_token(tokenizer, word)
        src = [vocab.cls_id] + tokenizer.encode(sentence)[: args.seq_length - 2] + [vocab.sep_id]
        if token is None:
            records.append(format_record(sentence, word, None, "The target word is not in the vocabulary."))
            continue
        target_id = vocab.token_to_id(token)
        if target_id not in src[1:-1]:
            records.append(format_record(sentence, word, None, "The target word is not in the sentence."))
            continue
        position = src.index(target_id, 1)
        ids, missing = candidate_ids(vocab, candidates, target_id)
        if missing:
            logger.info("%d candidate words are not in the model's vocabulary and were skipped", missing)
        sims = substitution_similarities(model, src, position, ids, args.batch_size, device)
        records.append(format_record(sentence, word, top_candidates(sims, ids, vocab, args.topn)))
    text = "".join(records)
    return emit(text, args.prediction_path)


if __name__ == "__main__":
    main()

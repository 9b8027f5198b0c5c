"""scripts/generate_seq2seq.py (UER-py's scripts/generate_seq2seq.py): a target for every line of
--test_path from an encoder-decoder model (T5, BART, MT Transformer: a config with "decoder").

    python scripts/generate_seq2seq.py --load_model_path models/mt.bin --vocab_path en_vocab.txt \\
        --tgt_vocab_path zh_vocab.txt --config_path models/transformer/base.json \\
        --test_path sources.txt --prediction_path targets.txt --beam_width 4

Each line is a source: [CLS] + its tokens + [SEP], cut to --seq_length.  The decoder starts from the
target vocabulary's [CLS] (``<s>`` in a RoBERTa-style vocabulary) and stops at its [SEP] (``</s>``):
UER-py's convention for the decoder input (tgt_in = [CLS] + target) and output (target + [SEP]).
A model config with "decoder_start_token_id" (set by scripts/convert.py from a Hugging Face T5, BART,
PEGASUS or Marian config.json) starts from that id instead.  --tgt_start_token / --tgt_end_token name
other tokens (e.g. T5 as released starts from <pad> and ends at </s>).  The source is encoded once,
and the decoder's cross-attention keys/values are computed on the first step and reused.  Each line
gets one output line (newlines inside written as \\n).
Defaults here are greedy (--top_k 1); sampling and beam search take the same flags as generate_lm.
"""

import argparse
import logging
from typing import List, Optional

from uer.cli.adapter_args import add_adapter_args, adapter_from_args, flags_given
from uer.cli.common import add_tokenizer_args, cli_entry, tokenizer_from_args
from uer.cli.generation_args import (add_generation_args, batches_by_length, generator_for, read_lines,
                                     settings_from_args)
from uer.cli.model_args import add_model_override_args, model_overrides
from uer.cli.output_paths import Output, refuse_outputs_over_inputs
from uer.cli.tool_args import add_config_arg, add_load_model_arg, check_minimums
from uer.errors import ConfigError, DataError
from uer.generation import generate_seq2seq
from uer.generation.loading import load_generative_model, require_checkpoint
from uer.generation.text import detokenize, one_line, strip_end
from uer.tools.common import load_model_config
from uer.training.device import pick_device
from uer.utils import atomic_write_text

logger = logging.getLogger("uer")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Generate a target for every line of a text file with an "
                                "encoder-decoder model.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_load_model_arg(p)
    add_config_arg(p)
    add_tokenizer_args(p)
    t = p.add_argument_group("target tokenizer (default: the source's)")
    t.add_argument("--tgt_vocab_path", default=None, help="Target vocabulary (MT with separate vocabularies).")
    t.add_argument("--tgt_spm_model_path", default=None, help="Target SentencePiece model.")
    t.add_argument("--tgt_tokenizer", default=None, help="Target tokenizer name (default: --tokenizer).")
    t.add_argument("--tgt_merges_path", default=None, help="merges.txt of a byte-level BPE target vocabulary.")
    t.add_argument("--tgt_start_token", default=None,
                   help="The decoder's first input token (default: the model config's decoder_start_token_id, "
                        "else the target vocabulary's [CLS] / <s>).")
    t.add_argument("--tgt_end_token", default=None,
                   help="Generation stops after this token (default: the target vocabulary's [SEP] / </s>).")
    p.add_argument("--test_path", required=True, help="One source a line.")
    p.add_argument("--prediction_path", required=True, help="Output: one generated target per line.")
    p.add_argument("--seq_length", type=int, default=None,
                   help="Source tokens kept ([CLS] and [SEP] included); default the model's max_seq_length.")
    p.add_argument("--tgt_seq_length", type=int, default=None,
                   help="Target tokens at most (start token included); default the model's max_seq_length.")
    add_generation_args(p, seq2seq=True)
    add_model_override_args(p)
    add_adapter_args(p)
    return p


def target_tokenizer(args, source_tokenizer):
    if not (args.tgt_vocab_path or args.tgt_spm_model_path):
        return source_tokenizer
    from uer.data.tokenizers import build_tokenizer
    return build_tokenizer(args.tgt_tokenizer or args.tokenizer, args.tgt_vocab_path, args.tgt_spm_model_path,
                           args.do_lower_case, merges_path=args.tgt_merges_path)


def special_id(vocab, token: Optional[str], name: str, flag: str) -> int:
    if token is None:
        vocab.require((name,), purpose=f"the decoder's {'start' if name == 'cls' else 'end'} token "
                                       f"(or name one with {flag})")
        return getattr(vocab, f"{name}_id")
    if token not in vocab._index:
        raise ConfigError(f"{flag} {token!r} is not in the target vocabulary {vocab.path or ''}; name a token "
                          "it has")
    return vocab._index[token]


@cli_entry
def main(argv: Optional[List[str]] = None) -> List[str]:
    args = build_parser().parse_args(argv)
    adapter = adapter_from_args(args, flags_given(build_parser, argv))
    check_minimums(("--batch_size", args.batch_size, 1),
                   ("--seq_length", 3 if args.seq_length is None else args.seq_length, 3),
                   ("--tgt_seq_length", 2 if args.tgt_seq_length is None else args.tgt_seq_length, 2))
    refuse_outputs_over_inputs(args, [Output("prediction_path")])
    require_checkpoint(args.load_model_path)
    lines = read_lines(args.test_path, "source")
    tokenizer = tokenizer_from_args(args)
    vocab = tokenizer.vocab
    vocab.require(("cls", "sep"), purpose="the source ([CLS] text [SEP])")
    tgt_tokenizer = target_tokenizer(args, tokenizer)
    tgt_vocab = tgt_tokenizer.vocab
    config, config_path = load_model_config(args.load_model_path, args.config_path, len(vocab),
                                            args.spm_model_path or args.vocab_path or args.tokenizer,
                                            model_overrides(args))
    if tgt_tokenizer is not tokenizer:
        if config.tgt_vocab_size and config.tgt_vocab_size != len(tgt_vocab):
            raise ConfigError(f"the model config {config_path} says tgt_vocab_size {config.tgt_vocab_size} but "
                              f"the target vocabulary {args.tgt_vocab_path or args.tgt_spm_model_path} has "
                              f"{len(tgt_vocab)} tokens; use the target vocabulary the model was trained with")
        config.tgt_vocab_size = len(tgt_vocab)
    # The model config's decoder_start_token_id (a converted T5 / BART / PEGASUS / Marian model carries
    # its config.json's) wins over the [CLS] convention; --tgt_start_token wins over both.
    if args.tgt_start_token is None and config.decoder_start_token_id >= 0:
        start_id = config.decoder_start_token_id
    else:
        start_id = special_id(tgt_vocab, args.tgt_start_token, "cls", "--tgt_start_token")
    end_id = special_id(tgt_vocab, args.tgt_end_token, "sep", "--tgt_end_token")
    seq_length = args.seq_length or config.max_seq_length
    tgt_seq_length = args.tgt_seq_length or config.max_seq_length
    for flag, value in (("--seq_length", seq_length), ("--tgt_seq_length", tgt_seq_length)):
        if value > config.max_seq_length:
            raise ConfigError(f"{flag} {value} exceeds the model's max_seq_length {config.max_seq_length} "
                              f"({config_path}); pass {flag} {config.max_seq_length} or less")
    sources = []
    cut = 0
    for line in lines:
        tokens = tokenizer.encode(line)
        cut += len(tokens) > seq_length - 2
        sources.append([vocab.cls_id] + tokens[:seq_length - 2] + [vocab.sep_id])
    if cut:
        logger.warning("%d of %d sources were cut to --seq_length %d tokens", cut, len(lines), seq_length)
    limit = tgt_seq_length - 1
    max_new_tokens = min(args.max_new_tokens, limit) if args.max_new_tokens is not None else limit
    if max_new_tokens < 1:
        raise DataError(f"--max_new_tokens must be ≥ 1, got {args.max_new_tokens}")
    pad_id = tgt_vocab.pad_id if tgt_vocab.pad_id is not None else 0
    settings = settings_from_args(args, max_new_tokens, end_id, pad_id)
    device = pick_device(args.device)
    model = load_generative_model(args.load_model_path, config, seq2seq=True, adapter=adapter).to(device)
    generator = generator_for(args.seed, device)
    targets: List[List[int]] = [[] for _ in sources]
    for batch in batches_by_length([len(s) for s in sources], args.batch_size):
        new = generate_seq2seq(model, [sources[i] for i in batch], settings, start_id,
                               use_cache=not args.no_cache, generator=generator)
        for i, ids in zip(batch, new):
            targets[i] = strip_end(ids, end_id)
    out = [one_line(detokenize(tgt_tokenizer, ids)) for ids in targets]
    atomic_write_text(args.prediction_path, "".join(line + "\n" for line in out))
    logger.info("%d sources, %d tokens generated (config %s) -> %s", len(lines), sum(map(len, targets)),
                config_path, args.prediction_path)
    return out


if __name__ == "__main__":
    main()

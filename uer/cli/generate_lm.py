"""scripts/generate_lm.py (UER-py's scripts/generate_lm.py): continue every line of --test_path with a
decoder-only LM (GPT-2; any config with "mask": "causal" and the "lm" target).

    python scripts/generate_lm.py --load_model_path models/gpt2.bin --vocab_path vocab.txt \\
        --config_path models/gpt2/small.json --test_path prompts.txt --prediction_path out.txt \\
        --seq_length 128 --top_k 1

Each line is a prompt; the model sees [CLS] + its tokens (the start token the lm processor puts before
every document; GPT-2's <|endoftext|>) and continues until [SEP] (the end token the lm processor puts
after every document; <|endoftext|> again for GPT-2), --max_new_tokens, or --seq_length tokens in all.
Each line gets one output line: the prompt, then the continuation, with a newline inside the
continuation written as the two characters \\n.  Prompts are batched (--batch_size) left-padded with a
KV cache; a padded prompt continues exactly as it would alone.  --top_k 1 is greedy and deterministic;
UER-py's defaults are kept (--top_k 70 --top_p 0 --temperature 1), so the default samples.
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
from uer.generation import generate_lm
from uer.generation.loading import load_generative_model, require_checkpoint
from uer.generation.text import detokenize, join_continuation, one_line, strip_end
from uer.tools.common import load_model_config
from uer.training.device import pick_device
from uer.utils import atomic_write_text

logger = logging.getLogger("uer")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Continue every line of a text file with a decoder-only LM.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_load_model_arg(p)
    add_config_arg(p)
    add_tokenizer_args(p)
    p.add_argument("--test_path", required=True, help="One prompt a line.")
    p.add_argument("--prediction_path", required=True, help="Output: one line per prompt, prompt + continuation.")
    p.add_argument("--seq_length", type=int, default=None,
                   help="Tokens in all (start token + prompt + continuation); default the model's max_seq_length.")
    add_generation_args(p, seq2seq=False)
    add_model_override_args(p)
    add_adapter_args(p)
    return p


@cli_entry
def main(argv: Optional[List[str]] = None) -> List[str]:
    args = build_parser().parse_args(argv)
    adapter = adapter_from_args(args, flags_given(build_parser, argv))
    check_minimums(("--batch_size", args.batch_size, 1), ("--seq_length", 2 if args.seq_length is None
                                                           else args.seq_length, 2))
    refuse_outputs_over_inputs(args, [Output("prediction_path")])
    require_checkpoint(args.load_model_path)
    lines = read_lines(args.test_path, "prompt")
    tokenizer = tokenizer_from_args(args)
    vocab = tokenizer.vocab
    vocab.require(("cls",), purpose="the start token generation puts before every prompt")
    config, config_path = load_model_config(args.load_model_path, args.config_path, len(vocab),
                                            args.spm_model_path or args.vocab_path or args.tokenizer,
                                            model_overrides(args))
    seq_length = args.seq_length or config.max_seq_length
    if seq_length > config.max_seq_length:
        raise ConfigError(f"--seq_length {seq_length} exceeds the model's max_seq_length {config.max_seq_length} "
                          f"({config_path}); pass --seq_length {config.max_seq_length} or less")
    prompts = [[vocab.cls_id] + tokenizer.encode(line) for line in lines]
    for number, prompt in enumerate(prompts, 1):
        if len(prompt) >= seq_length:
            raise DataError(f"--test_path {args.test_path} line {number}: the prompt has {len(prompt)} tokens "
                            f"(with the start token), leaving no room to generate within --seq_length {seq_length}; "
                            "shorten the prompt or raise --seq_length")
    max_new_tokens = args.max_new_tokens if args.max_new_tokens is not None else seq_length
    settings = settings_from_args(args, max_new_tokens, vocab.sep_id,
                                  vocab.pad_id if vocab.pad_id is not None else 0)
    device = pick_device(args.device)
    model = load_generative_model(args.load_model_path, config, seq2seq=False, adapter=adapter).to(device)
    generator = generator_for(args.seed, device)
    continuations: List[List[int]] = [[] for _ in prompts]
    for batch in batches_by_length([len(p) for p in prompts], args.batch_size):
        rows = [prompts[i] for i in batch]
        new = generate_lm(model, rows, settings, use_cache=not args.no_cache,
                          max_new=[seq_length - len(r) for r in rows], generator=generator)
        for i, ids in zip(batch, new):
            continuations[i] = strip_end(ids, settings.eos_id)
    out = [join_continuation(line, one_line(detokenize(tokenizer, ids)), tokenizer)
           for line, ids in zip(lines, continuations)]
    atomic_write_text(args.prediction_path, "".join(line + "\n" for line in out))
    logger.info("%d prompts, %d tokens generated (config %s) -> %s", len(lines),
                sum(map(len, continuations)), config_path, args.prediction_path)
    return out


if __name__ == "__main__":
    main()

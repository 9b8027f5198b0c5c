"""Generation speed with and without the KV cache (uer.generation), beside transformers' GPT-2
``generate`` with its cache as a reference in the same run.

A GPT-2 config (default models/gpt2/small.json shrunk to 6 layers, GPT-2's 50257-token vocabulary,
random weights) continues random prompts greedily for --max_new_tokens tokens; every token is
forced (no end token), so every mode does the same work.  The table gives wall time, generated
tokens/s and the speed-up over recomputing the whole sequence at each step.  Usage:

    OMP_NUM_THREADS=1 python benchmarks/generation_speed.py --layers_num 6 --max_new_tokens 128 --threads 1
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uer.config import load_config  # noqa: E402
from uer.generation import GenerationSettings, generate_lm  # noqa: E402
from uer.models import build_model  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="models/gpt2/small.json")
    p.add_argument("--layers_num", type=int, default=6)
    p.add_argument("--vocab_size", type=int, default=50257)
    p.add_argument("--prompt_length", type=int, default=16)
    p.add_argument("--max_new_tokens", type=int, default=128)
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 4])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no_reference", action="store_true", help="Skip transformers' GPT-2.")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = load_config(args.config, {"layers_num": args.layers_num, "dropout": 0.0})
    config.vocab_size = args.vocab_size
    model = build_model(config).eval()
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, top_k=1, eos_id=None)
    reference = None
    if not args.no_reference:
        try:
            import transformers
            transformers.logging.set_verbosity_error()
            reference = transformers.GPT2LMHeadModel(transformers.GPT2Config(
                vocab_size=args.vocab_size, n_embd=config.hidden_size, n_layer=config.layers_num,
                n_head=config.heads_num, n_positions=config.max_seq_length, n_inner=config.feedforward_size)).eval()
        except ImportError:
            print("transformers is not installed: no reference row")
    print(f"GPT-2 {config.layers_num} layers x {config.hidden_size}, vocab {args.vocab_size}, prompt "
          f"{args.prompt_length} tokens, {args.max_new_tokens} new tokens, greedy, CPU, {args.threads} thread(s)")
    print(f"{'batch':>5} {'mode':<28} {'seconds':>8} {'tokens/s':>9} {'vs no cache':>11}")
    for batch in args.batch_sizes:
        g = torch.Generator().manual_seed(batch)
        prompts = torch.randint(0, args.vocab_size, (batch, args.prompt_length), generator=g).tolist()
        generate_lm(model, prompts, GenerationSettings(max_new_tokens=4, top_k=1))   # warm-up
        new_tokens = batch * args.max_new_tokens
        rows = []
        seconds_full, out_full = timed(lambda: generate_lm(model, prompts, settings, use_cache=False))
        seconds_cached, out_cached = timed(lambda: generate_lm(model, prompts, settings, use_cache=True))
        assert out_full == out_cached, "cached and uncached greedy outputs differ"
        rows.append(("uer, no cache", seconds_full))
        rows.append(("uer, KV cache", seconds_cached))
        if reference is not None:
            ids = torch.tensor(prompts)
            with torch.no_grad():
                reference.generate(ids[:, :4], max_new_tokens=4, do_sample=False, pad_token_id=0)
                seconds_ref, _ = timed(lambda: reference.generate(
                    ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.max_new_tokens, do_sample=False,
                    min_new_tokens=args.max_new_tokens, pad_token_id=0, eos_token_id=None))
            rows.append(("transformers generate, cache", seconds_ref))
        for name, seconds in rows:
            print(f"{batch:>5} {name:<28} {seconds:>8.2f} {new_tokens / seconds:>9.1f} "
                  f"{seconds_full / seconds:>10.1f}x")


if __name__ == "__main__":
    main()

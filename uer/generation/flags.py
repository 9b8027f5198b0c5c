"""The decoding-strategy flags (UER-py's --top_k --top_p --temperature, plus --beam_width,
--max_new_tokens ...) and the ``GenerationSettings`` they ask for.  Defined here, in the library,
because fine-tuning tasks that generate (``uer.tasks.text2text``) declare them through
``Task.add_args`` as well as the generation scripts (``uer.cli.generation_args``)."""

import argparse

from uer.generation.settings import GenerationSettings


def add_decoding_args(g, seq2seq: bool) -> None:
    """``g``: a parser or argument group.  Sampling by default for an LM (top-k 70, UER-py's
    generate_lm), greedy for seq2seq (top-k 1)."""
    g.add_argument("--max_new_tokens", type=int, default=None,
                   help="Tokens to generate at most per line (default: up to " +
                   ("--tgt_seq_length" if seq2seq else "--seq_length") + ").")
    g.add_argument("--top_k", type=int, default=70 if not seq2seq else 1,
                   help="Sample from the k most likely tokens; 1: greedy (deterministic); 0: no limit.")
    g.add_argument("--top_p", type=float, default=0.0,
                   help="Nucleus sampling: the most likely tokens holding this probability; 0 or 1: off.")
    g.add_argument("--temperature", type=float, default=1.0, help="Divides the logits before sampling.")
    g.add_argument("--repetition_penalty", type=float, default=1.0,
                   help="CTRL's penalty on tokens already in the text (>1 discourages repeats; 1: off).")
    g.add_argument("--no_repeat_ngram_size", type=int, default=0,
                   help="Never repeat an n-gram of this size (0: off).")
    g.add_argument("--beam_width", type=int, default=1,
                   help="Beam search with this many beams (deterministic; ignores the sampling flags); 1: off.")
    g.add_argument("--length_penalty", type=float, default=1.0,
                   help="Beam search: a finished beam scores sum(log p) / length ** length_penalty.")


def settings_from_args(args: argparse.Namespace, max_new_tokens: int, eos_id, pad_id: int) -> GenerationSettings:
    return GenerationSettings(max_new_tokens=max_new_tokens, top_k=args.top_k, top_p=args.top_p,
                              temperature=args.temperature, repetition_penalty=args.repetition_penalty,
                              no_repeat_ngram_size=args.no_repeat_ngram_size, beam_width=args.beam_width,
                              length_penalty=args.length_penalty, eos_id=eos_id, pad_id=pad_id).validate()

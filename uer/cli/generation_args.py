"""Flags and input reading shared by scripts/generate_lm.py and scripts/generate_seq2seq.py."""

import argparse
import os
from typing import List

import torch

from uer.errors import DataError
from uer.generation import GenerationSettings
from uer.data.text_files import open_text


def add_generation_args(p: argparse.ArgumentParser, seq2seq: bool) -> None:
    g = p.add_argument_group("generation")
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
    g.add_argument("--batch_size", type=int, default=8, help="Lines generated together.")
    g.add_argument("--seed", type=int, default=7, help="Seeds sampling.")
    g.add_argument("--no_cache", action="store_true",
                   help="Recompute the whole sequence at every step instead of using the KV cache (slow; "
                        "for checks and timing).")
    g.add_argument("--device", default="auto")


def settings_from_args(args: argparse.Namespace, max_new_tokens: int, eos_id, pad_id: int) -> GenerationSettings:
    return GenerationSettings(max_new_tokens=max_new_tokens, top_k=args.top_k, top_p=args.top_p,
                              temperature=args.temperature, repetition_penalty=args.repetition_penalty,
                              no_repeat_ngram_size=args.no_repeat_ngram_size, beam_width=args.beam_width,
                              length_penalty=args.length_penalty, eos_id=eos_id, pad_id=pad_id).validate()


def read_lines(path: str, what: str) -> List[str]:
    """Every line of --test_path (blank ones included: each line gets one output line)."""
    if not os.path.isfile(path):
        raise DataError(f"--test_path {path} does not exist; pass a text file with one {what} per line")
    with open_text(path, f"--test_path {path}") as f:
        lines = [line.rstrip("\r\n") for line in f]
    if not any(line.strip() for line in lines):
        raise DataError(f"--test_path {path} holds no {what}s (it is empty or blank); write one {what} per line")
    return lines


def batches_by_length(lengths: List[int], batch_size: int) -> List[List[int]]:
    """Line indices grouped into batches of similar length (less padding); order restored by the caller."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def generator_for(seed: int, device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)

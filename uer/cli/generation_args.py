"""Flags and input reading shared by scripts/generate_lm.py and scripts/generate_seq2seq.py."""

import argparse
import os
from typing import List

import torch

from uer.errors import DataError
from uer.generation.flags import add_decoding_args, settings_from_args  # noqa: F401  (re-exported)
from uer.data.text_files import open_text


def add_generation_args(p: argparse.ArgumentParser, seq2seq: bool) -> None:
    g = p.add_argument_group("generation")
    add_decoding_args(g, seq2seq)
    g.add_argument("--batch_size", type=int, default=8, help="Lines generated together.")
    g.add_argument("--seed", type=int, default=7, help="Seeds sampling.")
    g.add_argument("--no_cache", action="store_true",
                   help="Recompute the whole sequence at every step instead of using the KV cache (slow; "
                        "for checks and timing).")
    g.add_argument("--device", default="auto")


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

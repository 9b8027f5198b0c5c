"""Generation for every generative model: greedy, temperature / top-k / top-p sampling, repetition
penalty, beam search (length penalty, no-repeat-ngram), stop at an end token or a length, with a KV
cache and batched (left-padded) prompts.  ``generate_lm`` serves decoder-only LMs, ``generate_seq2seq``
encoder-decoder models; both return, per row, the new token ids (the end token included when it
was generated)."""

from typing import List, Optional, Sequence

import torch

from uer.generation.search import beam_search, sample
from uer.generation.settings import GenerationSettings
from uer.generation.steppers import CausalLMStepper, Seq2SeqStepper


def run(stepper, settings: GenerationSettings, max_new: Optional[Sequence[int]] = None,
        generator: Optional[torch.Generator] = None) -> List[List[int]]:
    settings.validate()
    if settings.beam_width > 1:
        return beam_search(stepper, settings, max_new)
    return sample(stepper, settings, max_new, generator)


def generate_lm(model, prompts: Sequence[Sequence[int]], settings: GenerationSettings, use_cache: bool = True,
                max_new: Optional[Sequence[int]] = None, generator: Optional[torch.Generator] = None
                ) -> List[List[int]]:
    """Continue every prompt (token ids) of a decoder-only model; prompts are batched left-padded."""
    model.eval()
    return run(CausalLMStepper(model, prompts, settings.pad_id, use_cache), settings, max_new, generator)


def generate_seq2seq(model, sources: Sequence[Sequence[int]], settings: GenerationSettings, start_id: int,
                     use_cache: bool = True, generator: Optional[torch.Generator] = None) -> List[List[int]]:
    """Decode a target for every source (token ids) of an encoder-decoder model from ``start_id``."""
    model.eval()
    return run(Seq2SeqStepper(model, sources, start_id, settings.pad_id, use_cache), settings, None, generator)


__all__ = ["GenerationSettings", "generate_lm", "generate_seq2seq", "run", "sample", "beam_search",
           "CausalLMStepper", "Seq2SeqStepper"]

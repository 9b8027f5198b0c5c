"""What to generate: the decoding strategy and its knobs, validated once (flags name themselves)."""

from dataclasses import dataclass
from typing import Optional

from uer.errors import ConfigError


@dataclass
class GenerationSettings:
    """``top_k`` 1 is greedy (argmax, deterministic); 0 switches top-k off.  ``top_p`` 0 or 1 switches
    nucleus filtering off (UER-py's default 0).  ``beam_width`` > 1 is beam search, which is
    deterministic and ignores temperature / top-k / top-p.  ``eos_id``: generation of a row stops after
    it (None: only the length stops it).  ``length_penalty``: a finished beam scores
    sum(log p) / length ** length_penalty, length = generated tokens including the end token."""
    max_new_tokens: int = 32
    top_k: int = 0
    top_p: float = 0.0
    temperature: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    beam_width: int = 1
    length_penalty: float = 1.0
    eos_id: Optional[int] = None
    pad_id: int = 0

    @property
    def greedy(self) -> bool:
        return self.beam_width == 1 and self.top_k == 1

    def validate(self) -> "GenerationSettings":
        checks = [("--max_new_tokens", self.max_new_tokens >= 1, "must be ≥ 1"),
                  ("--top_k", self.top_k >= 0, "must be ≥ 0 (0: off, 1: greedy)"),
                  ("--top_p", 0.0 <= self.top_p <= 1.0, "must be in [0, 1] (0 or 1: off)"),
                  ("--temperature", self.temperature > 0, "must be > 0 (use --top_k 1 for greedy decoding)"),
                  ("--repetition_penalty", self.repetition_penalty > 0, "must be > 0 (1: off)"),
                  ("--no_repeat_ngram_size", self.no_repeat_ngram_size >= 0, "must be ≥ 0 (0: off)"),
                  ("--beam_width", self.beam_width >= 1, "must be ≥ 1 (1: no beam search)")]
        values = {"--max_new_tokens": self.max_new_tokens, "--top_k": self.top_k, "--top_p": self.top_p,
                  "--temperature": self.temperature, "--repetition_penalty": self.repetition_penalty,
                  "--no_repeat_ngram_size": self.no_repeat_ngram_size, "--beam_width": self.beam_width}
        for flag, ok, rule in checks:
            if not ok:
                raise ConfigError(f"{flag} {rule}, got {values[flag]}")
        return self

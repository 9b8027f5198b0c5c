"""Steppers: how a model of each kind takes one decoding step (see uer.generation.search).

``CausalLMStepper`` — a decoder-only LM (GPT-2; any causal encoder + "lm" target).  Prompts of a
batch are left-padded: every row's last prompt token sits in the last column, so one new column per
step serves every row.  Positions count real tokens only (a padded prompt's first token is at 0), and
padding keys are masked, so a padded prompt continues exactly as it would alone (the positions go to
the embedding and to the encoder's rotary / ALiBi scheme alike).  With the cache each
step runs one token through the stack, attending the cached keys/values; without it the whole
sequence is recomputed (the reference the cache is tested and timed against).

``Seq2SeqStepper`` — an encoder-decoder model: the source is encoded once, the decoder starts from
``start_id``; with the cache the cross-attention keys/values are computed on the first step and
reused, the self-attention ones grow by one token per step.
"""

from typing import List, Optional, Sequence

import torch
from torch import nn


def _lm_head(model: nn.Module):
    target = getattr(model, "target", None)
    if target is None or "lm" not in getattr(target, "names", ()):
        raise ValueError("generation needs a model with an \"lm\" target (next-token logits)")
    return target._modules["lm"]


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int, device):
    """(B, L) ids and keep mask, each prompt right-aligned."""
    length = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), length), pad_id, dtype=torch.long)
    keep = torch.zeros(len(prompts), length, dtype=torch.bool)
    for i, p in enumerate(prompts):
        if p:
            ids[i, length - len(p):] = torch.as_tensor(list(p), dtype=torch.long)
            keep[i, length - len(p):] = True
    return ids.to(device), keep.to(device)


def right_pad(rows: Sequence[Sequence[int]], pad_id: int, device):
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    seg = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.as_tensor(list(r), dtype=torch.long)
        seg[i, :len(r)] = 1
    return ids.to(device), seg.to(device)


class CausalLMStepper:
    def __init__(self, model: nn.Module, prompts: Sequence[Sequence[int]], pad_id: int = 0,
                 use_cache: bool = True):
        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token (e.g. the start token)")
        self.model, self.lm = model, _lm_head(model)
        self.use_cache = use_cache
        self.device = next(model.parameters()).device
        self.batch_size = len(prompts)
        self.contexts: List[List[int]] = [list(p) for p in prompts]
        self.ids, self.keep = left_pad(prompts, pad_id, self.device)
        self.positions = (self.keep.long().cumsum(dim=1) - 1).clamp(min=0)
        self.next_position = self.keep.long().sum(dim=1)               # (B,)
        # Rows that finished keep being fed padding; their positions must stay inside the table.
        self.max_position = model.config.max_seq_length - 1
        self.cache = None

    def _last_logits(self, ids, keep, positions, cache) -> torch.Tensor:
        seg = keep.long()                     # segment 1 at real tokens, 0 at padding (as the lm processor)
        hidden = self.model.encoder(self.model.embedding(ids, seg, positions=positions), seg, cache=cache,
                                    positions=positions)
        return self.lm.logits(hidden[:, -1])

    @torch.no_grad()
    def start(self) -> torch.Tensor:
        self.cache = self.model.encoder.new_cache() if self.use_cache else None
        return self._last_logits(self.ids, self.keep, self.positions, self.cache)

    @torch.no_grad()
    def advance(self, tokens: torch.Tensor) -> torch.Tensor:
        position = self.next_position.clamp(max=self.max_position).unsqueeze(1)
        self.next_position = self.next_position + 1
        keep = torch.ones_like(tokens, dtype=torch.bool).unsqueeze(1)
        if self.use_cache:
            return self._last_logits(tokens.unsqueeze(1), keep, position, self.cache)
        self.ids = torch.cat([self.ids, tokens.unsqueeze(1)], dim=1)
        self.keep = torch.cat([self.keep, keep], dim=1)
        self.positions = torch.cat([self.positions, position], dim=1)
        return self._last_logits(self.ids, self.keep, self.positions, None)

    def reorder(self, index: torch.Tensor) -> None:
        self.ids, self.keep = self.ids.index_select(0, index), self.keep.index_select(0, index)
        self.positions = self.positions.index_select(0, index)
        self.next_position = self.next_position.index_select(0, index)
        self.contexts = [self.contexts[i] for i in index.tolist()]
        self.batch_size = index.numel()
        if self.cache is not None:
            self.cache.reorder(index)


class Seq2SeqStepper:
    def __init__(self, model: nn.Module, sources: Sequence[Sequence[int]], start_id: int, pad_id: int = 0,
                 use_cache: bool = True):
        if getattr(model, "decoder", None) is None:
            raise ValueError("seq2seq generation needs an encoder-decoder model (a config with \"decoder\")")
        if any(len(s) == 0 for s in sources):
            raise ValueError("every source needs at least one token")
        self.model, self.lm = model, _lm_head(model)
        self.use_cache = use_cache
        self.device = next(model.parameters()).device
        self.batch_size = len(sources)
        self.src, self.seg = right_pad(sources, pad_id, self.device)
        self.tgt = torch.full((len(sources), 1), start_id, dtype=torch.long, device=self.device)
        self.contexts: List[List[int]] = [[start_id] for _ in sources]
        self.memory: Optional[torch.Tensor] = None
        self.cache = None

    def _last_logits(self, tgt_in: torch.Tensor) -> torch.Tensor:
        hidden = self.model.decode(tgt_in, self.memory, self.seg, cache=self.cache)
        return self.lm.logits(hidden[:, -1])

    @torch.no_grad()
    def start(self) -> torch.Tensor:
        self.memory = self.model.encode(self.src, self.seg)      # once per source
        self.cache = self.model.decoder.new_cache() if self.use_cache else None
        return self._last_logits(self.tgt)

    @torch.no_grad()
    def advance(self, tokens: torch.Tensor) -> torch.Tensor:
        self.tgt = torch.cat([self.tgt, tokens.unsqueeze(1)], dim=1)
        return self._last_logits(self.tgt[:, -1:] if self.use_cache else self.tgt)

    def reorder(self, index: torch.Tensor) -> None:
        self.src, self.seg, self.tgt = (t.index_select(0, index) for t in (self.src, self.seg, self.tgt))
        if self.memory is not None:
            self.memory = self.memory.index_select(0, index)
        self.contexts = [self.contexts[i] for i in index.tolist()]
        self.batch_size = index.numel()
        if self.cache is not None:
            self.cache.reorder(index)

"""Low-rank adapters on a linear layer: LoRA (Hu et al., 2021) and DyLoRA (Valipour et al., 2022).

    y = x W^T + b + (alpha / rank) * dropout(x) A[:rank]^T B[:, :rank]^T

``W`` and ``b`` are the wrapped ``nn.Linear``'s own parameters, kept under their names (``weight``,
``bias``) so a checkpoint of the plain model loads strictly into the adapted one; ``A`` (r x in) and
``B`` (out x r) are the adapter.  B starts at zero, so the adapted model starts as the plain one.

DyLoRA trains every rank from ``min_r`` to ``r`` at once: each training forward uses the first
``b`` rows of A and columns of B with b ~ U{min_r..r} and scale alpha / b, so after training the
adapter can be cut to any rank in that range (``truncate``) without retraining.  The rank comes
from a ``RankSampler`` shared by all layers of a model (one draw per optimizer step, a function of
(seed, step): the same on every process and every micro-batch, and again after a resume), or —
for a layer used on its own — from the layer's own seeded generator.  Evaluation uses the full
rank, or ``active_rank`` when set.
"""

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from uer.layers.dropout import Dropout


class RankSampler:
    """The DyLoRA rank of the current optimizer step, b ~ U{min_r..r}.

    ``set_step(step)`` fixes the step (the Trainer calls it through the model's
    ``set_training_step`` hook); the rank is then drawn from a generator seeded with (seed, step),
    so it depends on nothing else.  Before any ``set_step`` every call draws afresh from one
    seeded generator (reproducible, but not resumable)."""

    def __init__(self, min_r: int, r: int, seed: int = 0):
        if not 1 <= min_r <= r:
            raise ValueError(f"DyLoRA needs 1 <= min_r <= r, got min_r={min_r}, r={r}")
        self.min_r, self.r, self.seed = min_r, r, seed
        self.step: Optional[int] = None
        self._rank: Optional[int] = None
        self._free = torch.Generator().manual_seed(seed)

    def set_step(self, step: int) -> None:
        self.step, self._rank = int(step), None

    def _draw(self, generator: torch.Generator) -> int:
        return int(torch.randint(self.min_r, self.r + 1, (1,), generator=generator))

    def __call__(self) -> int:
        if self.step is None:
            return self._draw(self._free)
        if self._rank is None:
            seed = (self.seed * 1_000_003 + self.step) % (2 ** 63)
            self._rank = self._draw(torch.Generator().manual_seed(seed))
        return self._rank


class LoRALinear(nn.Linear):
    """An ``nn.Linear`` with a low-rank adapter; built from an existing layer, whose parameters it
    takes over (the same Parameter objects: no copy, same names, same requires_grad)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0,
                 min_r: Optional[int] = None, seed: int = 0):
        nn.Module.__init__(self)         # not nn.Linear.__init__: it would allocate a second weight
        if r <= 0:
            raise ValueError(f"LoRA rank must be positive, got {r}")
        if min_r is not None and not 1 <= min_r <= r:
            raise ValueError(f"DyLoRA needs 1 <= min_r <= r, got min_r={min_r}, r={r}")
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.register_parameter("bias", base.bias)
        # base.weight may be a ZeRO-3 placeholder: take dtype/device from it, shapes from the layer.
        dtype, device = base.weight.dtype, base.weight.device
        a = torch.empty(r, self.in_features, dtype=torch.float32)
        # nn.Linear's default (kaiming-uniform, a=sqrt(5)) is U(-1/sqrt(in), 1/sqrt(in)); drawn from
        # a private generator so that adding adapters leaves the global RNG stream alone.
        bound = 1.0 / math.sqrt(self.in_features)
        a.uniform_(-bound, bound, generator=torch.Generator().manual_seed(seed))
        self.lora_A = nn.Parameter(a.to(device=device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, r, device=device, dtype=dtype))
        self.lora_dropout = Dropout(dropout) if dropout > 0 else nn.Identity()
        self.r, self.alpha, self.min_r, self.seed = r, float(alpha), min_r, seed
        self.active_rank: Optional[int] = None     # the rank used outside training (None: r)
        self.rank_sampler: Optional[Callable[[], int]] = None
        self._own_sampler: Optional[RankSampler] = None

    @property
    def dynamic(self) -> bool:
        return self.min_r is not None

    def rank(self) -> int:
        """The rank this forward uses."""
        if self.training and self.dynamic:
            if self.rank_sampler is not None:
                return self.rank_sampler()
            if self._own_sampler is None:
                self._own_sampler = RankSampler(self.min_r, self.r, self.seed)
            return self._own_sampler()
        rank = self.active_rank if self.active_rank is not None else self.r
        if not 1 <= rank <= self.r:
            raise ValueError(f"active_rank {rank} is outside 1..{self.r}")
        return rank

    def delta_weight(self, rank: Optional[int] = None) -> torch.Tensor:
        """(alpha / rank) * B[:, :rank] @ A[:rank], shaped like ``weight``."""
        rank = self.r if rank is None else rank
        return (self.lora_B[:, :rank] @ self.lora_A[:rank]) * (self.alpha / rank)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        rank = self.rank()
        a, b = (self.lora_A, self.lora_B) if rank == self.r else (self.lora_A[:rank], self.lora_B[:, :rank])
        return y + F.linear(F.linear(self.lora_dropout(x), a), b) * (self.alpha / rank)

    def extra_repr(self) -> str:
        text = f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, " \
               f"r={self.r}, alpha={self.alpha:g}"
        if self.dynamic:
            text += f", dylora min_r={self.min_r}"
        return text

"""Adversarial training on the word-embedding weights: FGM and PGD (UER-py ``--use_adv --adv_type``).

After the normal ``loss.backward()`` of a training step, the embedding matrix is moved along its own
gradient, the same batch is run forward and backward again so the adversarial loss's gradient adds to
the clean one, and the matrix is put back bit for bit before the optimizer steps::

    loss = model(batch)["loss"]
    loss.backward()
    adversary.train_step(lambda: model(batch)["loss"])     # extra forward/backward(s), weights restored
    optimizer.step()

* FGM (Miyato et al. 2017): one step ``r = epsilon * g / ||g||_2``; the final gradient is
  ``grad L(E) + grad L(E + r)``.
* PGD (Madry et al. 2018), as UER-py runs it: the clean gradients are saved; ``k`` times the matrix
  moves ``alpha * g / ||g||`` and is projected back into the L2 ball of radius ``epsilon`` around the
  original; before each of the first ``k - 1`` extra backward passes the gradients are zeroed (so the
  next step follows the adversarial gradient alone), before the last one the clean gradients are put
  back.  The final gradient is ``grad L(E) + grad L(E + r_k)``; ``k`` extra passes in all.

Norms are taken over the whole parameter tensor (rows of tokens absent from the batch have zero
gradient and are not moved).  Flag names and defaults are UER-py's ``adv_opts``: ``--adv_type fgm``,
``--fgm_epsilon 1e-6``, ``--pgd_k 3``, ``--pgd_epsilon 1.0``, ``--pgd_alpha 0.3``.  One difference:
UER-py perturbs every parameter whose name contains ``"embedding"`` (word, position, segment
embeddings and the embedding layer norm); here only ``embedding.word.embedding.weight`` by default,
as in the FGM/PGD papers.  Pass ``param_name="embedding"`` for UER-py's behaviour.  When the gradient
of the perturbed parameter is zero or not finite (an fp16 overflow step) no perturbation is possible
and the extra pass is skipped (UER-py runs it unperturbed, doubling the clean gradient).

The gradients are read where they lie (``param.grad``), so this serves the local and DDP engines;
under DeepSpeed ZeRO-2/3 the gradients are partitioned and not available here.
"""

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from uer.errors import ConfigError

ADV_TYPES = ("fgm", "pgd")
WORD_EMBEDDING = "embedding.word.embedding.weight"


@dataclass(frozen=True)
class AdversarialConfig:
    """Settings of adversarial training; defaults are UER-py's (``uer/opts.py::adv_opts``)."""

    adv_type: str = "fgm"
    fgm_epsilon: float = 1e-6
    pgd_k: int = 3
    pgd_epsilon: float = 1.0
    pgd_alpha: float = 0.3
    param_name: str = WORD_EMBEDDING     # exact parameter name, or a prefix ("embedding" = all of them)

    def __post_init__(self):
        if self.adv_type not in ADV_TYPES:
            raise ConfigError(f"--adv_type {self.adv_type!r} is unknown; choose one of {', '.join(ADV_TYPES)}")
        for flag, value in (("--fgm_epsilon", self.fgm_epsilon), ("--pgd_epsilon", self.pgd_epsilon),
                            ("--pgd_alpha", self.pgd_alpha)):
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"{flag} {value} must be a positive number")
        if self.pgd_k < 1:
            raise ConfigError(f"--pgd_k {self.pgd_k} must be at least 1 (the number of PGD steps)")

    @classmethod
    def from_args(cls, args) -> Optional["AdversarialConfig"]:
        """The config named by parsed flags (UER-py names), or None without ``--use_adv``."""
        if not getattr(args, "use_adv", False):
            return None
        defaults = cls()
        return cls(**{name: getattr(args, name, getattr(defaults, name))
                      for name in ("adv_type", "fgm_epsilon", "pgd_k", "pgd_epsilon", "pgd_alpha", "param_name")})


def _strip_wrapper(name: str) -> str:
    """DDP, DeepSpeed and torch.compile wrap the model: the same parameter, a prefixed name."""
    for prefix in ("module.", "_orig_mod."):
        while name.startswith(prefix):
            name = name[len(prefix):]
    return name


def select_parameters(model: nn.Module, param_name: str = WORD_EMBEDDING) -> List[Tuple[str, nn.Parameter]]:
    """The trainable parameters to perturb: the one named ``param_name`` exactly, else all whose name
    starts with ``param_name`` at a dot boundary.  Wrapper prefixes (``module.``) are ignored."""
    named = [(_strip_wrapper(n), p) for n, p in model.named_parameters() if p.requires_grad]
    exact = [(n, p) for n, p in named if n == param_name]
    chosen = exact or [(n, p) for n, p in named if n.startswith(param_name.rstrip(".") + ".")]
    if not chosen:
        candidates = [n for n, _ in named if "embedding" in n] or [n for n, _ in named][:10]
        raise ConfigError(f"adversarial training: the model has no trainable parameter named {param_name!r} or "
                          f"starting with it; choose one of: {', '.join(candidates)}")
    return chosen


def _direction(grad: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """``g / ||g||_2`` in the parameter's dtype, or None when g is missing, zero or not finite."""
    if grad is None:
        return None
    norm = grad.detach().float().norm()
    # A host sync per step, accepted: FGM/PGD is an opt-in fine-tuning regulariser whose control flow
    # (perturb or not, project or not) follows these values, and it doubles the step's work anyway.
    if not torch.isfinite(norm) or norm == 0:
        return None
    return (grad.detach().float() / norm).to(grad.dtype)


class Adversary:
    """FGM/PGD for one model.  ``train_step(closure)`` runs after the clean ``loss.backward()``: it
    perturbs, calls ``backward(closure())`` once (FGM) or ``pgd_k`` times (PGD), restores the weights
    exactly and returns the last adversarial loss (detached), or None when no perturbation was possible.

    ``closure`` recomputes the loss of the same batch; ``backward`` (default ``loss.backward()``) is where
    the caller applies its loss scaling or gradient-accumulation division, the same as for the clean loss.
    """

    def __init__(self, model: nn.Module, config: AdversarialConfig):
        self.model, self.config = model, config
        self.params = select_parameters(model, config.param_name)

    def train_step(self, closure: Callable[[], torch.Tensor],
                   backward: Optional[Callable[[torch.Tensor], None]] = None) -> Optional[torch.Tensor]:
        backward = backward or (lambda loss: loss.backward())
        original = {n: p.detach().clone() for n, p in self.params}
        try:
            if self.config.adv_type == "fgm":
                return self._fgm(closure, backward)
            return self._pgd(closure, backward, original)
        finally:
            with torch.no_grad():
                for n, p in self.params:
                    p.copy_(original[n])

    def _fgm(self, closure, backward) -> Optional[torch.Tensor]:
        moved = False
        with torch.no_grad():
            for _, p in self.params:
                direction = _direction(p.grad)
                if direction is not None:
                    p.add_(direction, alpha=self.config.fgm_epsilon)
                    moved = True
        if not moved:
            return None
        loss = closure()
        backward(loss)
        return loss.detach()

    def _pgd(self, closure, backward, original: Dict[str, torch.Tensor]) -> Optional[torch.Tensor]:
        if all(_direction(p.grad) is None for _, p in self.params):
            return None
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        clean_grads = [None if p.grad is None else p.grad.detach().clone() for p in trainable]
        k, epsilon, alpha = self.config.pgd_k, self.config.pgd_epsilon, self.config.pgd_alpha
        loss = None
        for step in range(k):
            with torch.no_grad():
                for n, p in self.params:
                    direction = _direction(p.grad)
                    if direction is None:
                        continue
                    p.add_(direction, alpha=alpha)
                    r = p - original[n]                          # project onto the epsilon ball
                    norm = r.float().norm()
                    if norm > epsilon:
                        p.copy_(original[n] + r * (epsilon / norm).to(r.dtype))
            if step < k - 1:
                self.model.zero_grad(set_to_none=True)           # the next step follows this pass alone
            else:
                for p, g in zip(trainable, clean_grads):         # the last pass adds to the clean gradient
                    p.grad = g
            loss = closure()
            backward(loss)
        return loss.detach()


def adversarial_step(model: nn.Module, loss_fn: Callable[[nn.Module, dict], torch.Tensor], batch: dict,
                     config: AdversarialConfig,
                     backward: Optional[Callable[[torch.Tensor], None]] = None) -> Optional[torch.Tensor]:
    """One call form of :class:`Adversary`: ``loss_fn(model, batch)`` recomputes the loss.  Call it after
    the clean backward and before ``optimizer.step()``."""
    return Adversary(model, config).train_step(lambda: loss_fn(model, batch), backward)

"""A linear-chain conditional random field for sequence labelling (UER-py's run_ner.py ``--crf_target``).

Score of a tag path ``y_0 .. y_{n-1}`` over emissions ``e`` (B, L, K)::

    start[y_0] + e[0, y_0] + sum_{t>=1} (transitions[y_{t-1}, y_t] + e[t, y_t]) + end[y_{n-1}]

``neg_log_likelihood`` is ``log Z - score(gold)`` with ``log Z`` from the forward algorithm in log space;
``decode`` is Viterbi.  Both are vectorised over the batch (the loop runs over positions only) and take
a boolean mask whose rows are contiguous prefixes (``mask[b, :n_b]`` True, the rest False).  A tagger
that labels only some positions (the first piece of each word) first moves those positions to the left
with :func:`compact`.  Everything is computed in float32 with autocast disabled: a log-sum-exp over
bf16 scores loses the small differences the loss is made of.
"""

from typing import List, Tuple

import torch
from torch import nn

from uer.errors import ConfigError


def compact(values: torch.Tensor, positions_mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Move the selected positions of every row to the left, keeping their order.

    ``values`` is (B, L) or (B, L, ...) (emissions, tags ...), ``positions_mask`` (B, L) bool marks the
    positions to keep (e.g. ``labels != IGNORE``).  Returns ``(compacted, mask)``: ``compacted`` is
    (B, M, ...) with M the largest number of selected positions in a row, row b holding its selected
    values in ``[:n_b]`` and zeros after; ``mask`` (B, M) bool is the prefix mask ``arange(M) < n_b``.
    Apply it with the same ``positions_mask`` to emissions and to tags so they stay aligned.
    """
    if positions_mask.shape != values.shape[:2]:
        raise ConfigError(f"compact: positions_mask has shape {tuple(positions_mask.shape)} but values start with "
                          f"{tuple(values.shape[:2])}; pass the (batch, length) mask of the same tensor")
    positions_mask = positions_mask.bool()
    counts = positions_mask.sum(dim=1)
    width = int(counts.max()) if counts.numel() else 0
    # A stable sort of "not selected" puts the selected positions first, in their original order.
    order = torch.sort((~positions_mask).to(torch.int8), dim=1, stable=True).indices[:, :width]
    index = order.reshape(order.shape + (1,) * (values.dim() - 2)).expand(order.shape + values.shape[2:])
    mask = torch.arange(width, device=values.device)[None, :] < counts[:, None]
    picked = values.gather(1, index)
    zeros = torch.zeros((), dtype=values.dtype, device=values.device)
    mask_b = mask.reshape(mask.shape + (1,) * (values.dim() - 2))
    return torch.where(mask_b, picked, zeros), mask


def _lengths(mask: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Row lengths of a prefix mask; anything else is an error naming the fix."""
    if mask.shape != shape:
        raise ConfigError(f"CRF: mask has shape {tuple(mask.shape)} but emissions are {tuple(shape)} (batch, length)")
    mask = mask.bool()
    lengths = mask.sum(dim=1)
    prefix = torch.arange(shape[1], device=mask.device)[None, :] < lengths[:, None]
    if not torch.equal(prefix, mask):
        raise ConfigError("CRF: every row of the mask must be a contiguous prefix of True values; move the "
                          "labelled positions to the left first with uer.layers.crf.compact(values, positions_mask)")
    return lengths


class CRF(nn.Module):
    """Linear-chain CRF over ``labels_num`` tags.

    Parameters: ``transitions`` (K, K), ``transitions[i, j]`` the score of tag j following tag i;
    ``start_transitions`` (K,) and ``end_transitions`` (K,), the scores of the first and the last tag.
    Initialised uniformly in [-0.1, 0.1].
    """

    def __init__(self, labels_num: int):
        super().__init__()
        if labels_num < 1:
            raise ConfigError(f"CRF: labels_num must be at least 1, got {labels_num}")
        self.labels_num = labels_num
        self.transitions = nn.Parameter(torch.empty(labels_num, labels_num).uniform_(-0.1, 0.1))
        self.start_transitions = nn.Parameter(torch.empty(labels_num).uniform_(-0.1, 0.1))
        self.end_transitions = nn.Parameter(torch.empty(labels_num).uniform_(-0.1, 0.1))

    def _check(self, emissions: torch.Tensor) -> None:
        if emissions.dim() != 3 or emissions.size(2) != self.labels_num:
            raise ConfigError(f"CRF: emissions must be (batch, length, {self.labels_num}), got "
                              f"{tuple(emissions.shape)}")

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log Z of every row (B,), by the forward algorithm; 0 for a row with no positions."""
        self._check(emissions)
        lengths = _lengths(mask, emissions.shape[:2])
        with torch.autocast(device_type=emissions.device.type, enabled=False):
            em = emissions.float()
            mask = mask.bool()
            if em.size(1) == 0:
                return em.new_zeros(em.size(0))
            trans = self.transitions.float()
            alpha = self.start_transitions.float()[None, :] + em[:, 0]               # (B, K)
            for t in range(1, em.size(1)):
                # alpha'[b, j] = logsumexp_i alpha[b, i] + trans[i, j] + em[b, t, j]
                step = torch.logsumexp(alpha[:, :, None] + trans[None], dim=1) + em[:, t]
                alpha = torch.where(mask[:, t, None], step, alpha)
            log_z = torch.logsumexp(alpha + self.end_transitions.float()[None, :], dim=1)
            return torch.where(lengths > 0, log_z, torch.zeros_like(log_z))

    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Unnormalised score (B,) of the given tag path; tags at masked positions are ignored."""
        self._check(emissions)
        lengths = _lengths(mask, emissions.shape[:2])
        with torch.autocast(device_type=emissions.device.type, enabled=False):
            em = emissions.float()
            batch, length = tags.shape
            if length == 0:
                return em.new_zeros(batch)
            mask = mask.bool()
            tags = torch.where(mask, tags, torch.zeros_like(tags)).long()      # masked slots may hold -100
            on_path = em.gather(2, tags[:, :, None]).squeeze(2)                   # (B, L)
            moves = self.transitions.float()[tags[:, :-1], tags[:, 1:]]           # (B, L-1)
            total = (on_path * mask).sum(1) + (moves * mask[:, 1:]).sum(1)
            last = tags.gather(1, (lengths - 1).clamp(min=0)[:, None]).squeeze(1)
            total = total + self.start_transitions.float()[tags[:, 0]] + self.end_transitions.float()[last]
            return torch.where(lengths > 0, total, torch.zeros_like(total))

    def neg_log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """-log p(tags | emissions) of every row (B,), float32; 0 for a row with no positions.
        Average it (or sum it) for the loss."""
        return self.log_partition(emissions, mask) - self.score(emissions, tags, mask)

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> List[List[int]]:
        """Viterbi: the highest-scoring tag path of every row, as a list of ``n_b`` tag ids."""
        self._check(emissions)
        lengths = _lengths(mask, emissions.shape[:2]).tolist()
        with torch.autocast(device_type=emissions.device.type, enabled=False):
            em = emissions.float()
            if em.size(1) == 0:
                return [[] for _ in lengths]
            mask = mask.bool()
            trans = self.transitions.float()
            best = self.start_transitions.float()[None, :] + em[:, 0]                # (B, K)
            history = []                                                             # (B, K) per step
            for t in range(1, em.size(1)):
                step, prev = (best[:, :, None] + trans[None]).max(dim=1)
                history.append(prev)
                best = torch.where(mask[:, t, None], step + em[:, t], best)
            last = (best + self.end_transitions.float()[None, :]).argmax(dim=1).tolist()
            history = torch.stack(history, dim=1).tolist() if history else []        # (B, L-1, K)
        paths = []
        for b, n in enumerate(lengths):
            if n == 0:
                paths.append([])
                continue
            path = [last[b]]
            for t in range(n - 2, -1, -1):          # history[b][t] maps the tag at t+1 to the best at t
                path.append(history[b][t][path[-1]])
            paths.append(path[::-1])
        return paths

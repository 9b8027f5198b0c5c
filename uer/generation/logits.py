"""Logit processing before choosing a token, in Hugging Face's order: repetition penalty,
no-repeat-ngram ban, temperature, top-k, top-p.  Every function takes scores (N, V) and returns
new scores; a removed token gets -inf."""

from typing import List, Sequence

import torch

NEG_INF = float("-inf")


def seen_mask(contexts: Sequence[Sequence[int]], vocab_size: int, device) -> torch.Tensor:
    """(N, V) bool: True at every token already in each row's context (prompt + generated)."""
    seen = torch.zeros(len(contexts), vocab_size, dtype=torch.bool, device=device)
    for i, ids in enumerate(contexts):
        if ids:
            seen[i, torch.as_tensor(list(ids), device=device)] = True
    return seen


def repetition_penalty(scores: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty (Keskar et al. 2019), as transformers applies it: a seen token's positive score
    is divided by ``penalty``, a negative one multiplied, so either way it becomes less likely."""
    if penalty == 1.0:
        return scores
    penalised = torch.where(scores > 0, scores / penalty, scores * penalty)
    return torch.where(seen, penalised, scores)


def banned_ngram_tokens(ids: Sequence[int], n: int) -> List[int]:
    """Tokens that would repeat an n-gram already in ``ids`` (their last n-1 tokens seen before)."""
    if n <= 0 or len(ids) < n:
        return []
    ids = list(ids)
    prefix = tuple(ids[len(ids) - n + 1:]) if n > 1 else ()
    return [ids[i + n - 1] for i in range(len(ids) - n + 1) if tuple(ids[i:i + n - 1]) == prefix]


def ban_repeated_ngrams(scores: torch.Tensor, contexts: Sequence[Sequence[int]], n: int) -> torch.Tensor:
    if n <= 0:
        return scores
    scores = scores.clone()
    for i, ids in enumerate(contexts):
        banned = banned_ngram_tokens(ids, n)
        if banned:
            scores[i, banned] = NEG_INF
    return scores


def top_k_filter(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k highest scores of each row (k 0: all)."""
    if k <= 0 or k >= scores.size(-1):
        return scores
    kth = scores.topk(k, dim=-1).values[..., -1:]
    return scores.masked_fill(scores < kth, NEG_INF)


def top_p_filter(scores: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering (Holtzman et al. 2020): keep the smallest set of most likely tokens whose
    probability reaches ``p`` (the most likely token always stays).  p 0 or ≥ 1: off."""
    if p <= 0.0 or p >= 1.0:
        return scores
    sorted_scores, order = scores.sort(dim=-1, descending=True)
    probs = sorted_scores.softmax(dim=-1)
    before = probs.cumsum(dim=-1) - probs          # mass of the more likely tokens
    remove_sorted = before >= p
    remove_sorted[..., 0] = False
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    return scores.masked_fill(remove, NEG_INF)

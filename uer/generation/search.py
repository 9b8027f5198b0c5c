"""Decoding loops, written once for every generative model.  A model is seen through a *stepper*:

    stepper.batch_size            rows being decoded
    stepper.contexts              per row, the tokens repetition penalty / no-repeat-ngram look at
    stepper.start() -> (B, V)     logits of the first new token (runs the prompt / encodes the source)
    stepper.advance(tokens) -> (B, V)   feed one token per row (B,), logits of the next
    stepper.reorder(index)        keep rows ``index`` (beam search), caches included

A row that has finished is fed ``pad_id`` until every row has; its output is already final.
"""

from typing import List, Optional, Sequence

import torch

from uer.generation.logits import (NEG_INF, ban_repeated_ngrams, repetition_penalty, seen_mask,
                                   top_k_filter, top_p_filter)
from uer.generation.settings import GenerationSettings


def _budgets(stepper, settings: GenerationSettings, max_new: Optional[Sequence[int]]) -> List[int]:
    rows = stepper.batch_size
    if max_new is None:
        return [settings.max_new_tokens] * rows
    return [min(settings.max_new_tokens, int(n)) for n in max_new]


def _penalised(logits: torch.Tensor, contexts, settings: GenerationSettings) -> torch.Tensor:
    scores = logits.float()
    if settings.repetition_penalty != 1.0:
        scores = repetition_penalty(scores, seen_mask(contexts, scores.size(-1), scores.device),
                                    settings.repetition_penalty)
    return ban_repeated_ngrams(scores, contexts, settings.no_repeat_ngram_size)


def sample(stepper, settings: GenerationSettings, max_new: Optional[Sequence[int]] = None,
           generator: Optional[torch.Generator] = None) -> List[List[int]]:
    """Greedy (top_k 1) or sampled continuation of every row: the new tokens, the end token included
    when it was generated.  ``max_new``: per-row limits below ``settings.max_new_tokens``."""
    budgets = _budgets(stepper, settings, max_new)
    rows = stepper.batch_size
    outputs: List[List[int]] = [[] for _ in range(rows)]
    contexts = [list(c) for c in stepper.contexts]
    done = [b <= 0 for b in budgets]
    if all(done):
        return outputs
    logits = stepper.start()
    for step in range(max(budgets)):
        scores = _penalised(logits, contexts, settings)
        if settings.greedy:
            tokens = scores.argmax(dim=-1)
        else:
            scores = top_p_filter(top_k_filter(scores / settings.temperature, settings.top_k), settings.top_p)
            tokens = torch.multinomial(scores.softmax(dim=-1), 1, generator=generator).squeeze(-1)
        chosen = tokens.tolist()
        for i, token in enumerate(chosen):
            if done[i]:
                chosen[i] = settings.pad_id
                continue
            outputs[i].append(token)
            contexts[i].append(token)
            if token == settings.eos_id or len(outputs[i]) >= budgets[i]:
                done[i] = True
        if all(done):
            break
        logits = stepper.advance(torch.tensor(chosen, dtype=torch.long, device=logits.device))
    return outputs


def _length_score(sum_logprobs: float, length: int, penalty: float) -> float:
    return sum_logprobs / (length ** penalty)


def _best_possible(best_live: float, length: int, limit: int, penalty: float) -> float:
    """An upper bound on the final score of any continuation of a live beam with sum ``best_live``
    (≤ 0, and it only falls) after ``length`` tokens, finishing with length in (length, limit]."""
    if best_live == NEG_INF:
        return NEG_INF
    final_length = limit if penalty > 0 else length + 1
    return _length_score(best_live, final_length, penalty)


def beam_search(stepper, settings: GenerationSettings, max_new: Optional[Sequence[int]] = None) -> List[List[int]]:
    """The highest-scoring continuation of every row found with ``settings.beam_width`` beams (a
    beam ending in ``eos_id`` is finished; the others finish at the length limit).  The search stops
    for a row once it holds beam_width finished hypotheses that no live beam can still beat."""
    width = settings.beam_width
    rows = stepper.batch_size
    budgets = _budgets(stepper, settings, max_new)
    if all(b <= 0 for b in budgets):
        return [[] for _ in range(rows)]
    logits = stepper.start()
    device = logits.device
    vocab = logits.size(-1)
    expand = torch.arange(rows, device=device).repeat_interleave(width)
    stepper.reorder(expand)
    logits = logits.index_select(0, expand)
    base = [list(c) for c in stepper.contexts]        # the contexts after reorder: one per beam
    beams: List[List[int]] = [[] for _ in range(rows * width)]
    scores = torch.full((rows, width), NEG_INF, device=device)
    scores[:, 0] = 0.0                                # at first only one beam per row is alive
    finished: List[List] = [[] for _ in range(rows)]  # (score, tokens)
    done = [b <= 0 for b in budgets]
    for step in range(max(budgets)):
        length = step + 1                             # tokens in a candidate
        # As in transformers' beam search, the penalty and the ban act on the log-probabilities.
        logp = _penalised(logits.float().log_softmax(dim=-1), [base[i] + beams[i] for i in range(rows * width)],
                          settings)
        candidates = (scores.unsqueeze(-1) + logp.view(rows, width, vocab)).view(rows, width * vocab)
        top_scores, top_index = candidates.topk(min(2 * width, width * vocab), dim=-1)
        top_scores, top_index = top_scores.tolist(), top_index.tolist()
        new_scores = torch.full((rows, width), NEG_INF, device=device)
        source = list(range(rows * width))            # the beam each new beam extends
        tokens = [settings.pad_id] * (rows * width)
        new_beams: List[List[int]] = [[] for _ in range(rows * width)]
        for b in range(rows):
            if done[b]:
                continue
            kept = 0
            for rank, (score, index) in enumerate(zip(top_scores[b], top_index[b])):
                if score == NEG_INF or kept == width:
                    break
                beam, token = divmod(index, vocab)
                parent = beam + b * width
                sequence = beams[parent] + [token]
                if token == settings.eos_id or length >= budgets[b]:
                    if rank < width:                  # an end among the best `width` candidates
                        _add_finished(finished[b], _length_score(score, length, settings.length_penalty),
                                      sequence, width)
                    continue                          # ended, or at the limit: no live beam
                slot = b * width + kept
                new_scores[b, kept] = score
                source[slot], tokens[slot], new_beams[slot] = parent, token, sequence
                kept += 1
            best_live = float(new_scores[b, 0]) if kept else NEG_INF
            if length >= budgets[b] or kept == 0 or (
                    len(finished[b]) >= width and
                    _best_possible(best_live, length, budgets[b], settings.length_penalty) <= finished[b][-1][0]):
                done[b] = True
        if all(done):
            break
        for b in range(rows):                         # finished rows: beams stay where they are
            if done[b]:
                for slot in range(b * width, (b + 1) * width):
                    new_beams[slot] = beams[slot]
        index = torch.tensor(source, dtype=torch.long, device=device)
        stepper.reorder(index)
        base = [base[i] for i in source]
        beams, scores = new_beams, new_scores
        logits = stepper.advance(torch.tensor(tokens, dtype=torch.long, device=device))
    return [max(f, key=lambda item: item[0])[1] if f else [] for f in finished]


def _add_finished(finished: List, score: float, tokens: List[int], width: int) -> None:
    """Keep the ``width`` best finished hypotheses, best first."""
    finished.append((score, tokens))
    finished.sort(key=lambda item: -item[0])
    del finished[width:]


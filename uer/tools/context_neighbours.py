"""Context-dependent nearest neighbours of a word (UER-py's scripts/topn_words_dep.py).

UER-py's method: encode the sentence and take the encoder's hidden state at the target word's
position; then, for every candidate word, put the candidate in that position (the rest of the
sentence unchanged), encode again and take the hidden state at the same position; rank the
candidates by the cosine similarity of the two states.  So a neighbour is a word that the model
reads like the target *in this sentence* -- a substitution, not a dictionary synonym."""

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from uer.data.vocab import Vocab


def target_token(tokenizer, word: str) -> Optional[str]:
    """The vocabulary token the word is: itself, or the single token the tokenizer makes of it
    (e.g. lower-cased); None when it is no single token."""
    if word in tokenizer.vocab:
        return word
    tokens = tokenizer.tokenize(word)
    return tokens[0] if len(tokens) == 1 and tokens[0] in tokenizer.vocab else None


def candidate_ids(vocab: Vocab, candidates: Sequence[str], target_id: int) -> Tuple[List[int], int]:
    """Ids of the candidate words that are model tokens, distinct, in order; special tokens and the
    target itself left out.  Also returns how many candidates were not in the vocabulary."""
    specials = set(vocab.special_ids)
    ids, seen, missing = [], set(), 0
    for word in candidates:
        if word not in vocab:
            missing += 1
            continue
        i = vocab.token_to_id(word)
        if i in seen or i in specials or i == target_id:
            continue
        seen.add(i)
        ids.append(i)
    return ids, missing


@torch.inference_mode()
def substitution_similarities(model, src: Sequence[int], position: int, candidates: Sequence[int],
                              batch_size: int, device: torch.device) -> torch.Tensor:
    """Cosine similarity, at ``position``, between the sentence's hidden state and the hidden state
    of the sentence with each candidate id substituted there.  src: one sentence's ids (no padding)."""
    model.eval()
    base = torch.tensor(src, dtype=torch.long, device=device).unsqueeze(0)
    seg = torch.ones_like(base)
    target = model.encode(base, seg)[0, position].float()                   # (H,)
    sims = []
    for start in range(0, len(candidates), batch_size):
        chunk = torch.tensor(candidates[start:start + batch_size], dtype=torch.long, device=device)
        batch = base.repeat(len(chunk), 1)
        batch[:, position] = chunk
        hidden = model.encode(batch, seg.expand_as(batch))[:, position].float()   # (chunk, H)
        sims.append(F.cosine_similarity(target.unsqueeze(0), hidden, dim=-1).cpu())
    return torch.cat(sims) if sims else torch.zeros(0)


def top_candidates(sims: torch.Tensor, ids: Sequence[int], vocab: Vocab, topn: int) -> List[Tuple[str, float]]:
    order = torch.sort(sims, descending=True, stable=True).indices[:topn]
    return [(vocab.id_to_token(ids[j]), float(sims[j])) for j in order.tolist()]


def format_record(sentence: str, word: str, neighbours: Optional[List[Tuple[str, float]]],
                  message: str = "") -> str:
    """UER-py's lines: ``Original sentence: s``, ``Target word: w``, then ``token<TAB>cosine`` lines
    (or the message saying why there are none)."""
    lines = [f"Original sentence: {sentence}", f"Target word: {word}"]
    if neighbours is None:
        lines.append(message)
    else:
        lines.extend(f"{token.strip()}\t{sim}" for token, sim in neighbours)
    return "\n".join(lines) + "\n"

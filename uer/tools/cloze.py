"""Fill-mask with a pretrained masked-LM (UER-py's scripts/cloze_test.py).

Each input line is one sentence, encoded as ``[CLS] sentence [SEP]``.  When the line writes the
vocabulary's mask token (``[MASK]``, or ``<mask>`` for RoBERTa-style vocabularies) the model predicts
every one of those positions; otherwise, as in UER-py, one random real token is masked and its
true token is reported beside the predictions.  Logits are computed only at the masked positions
(the MLM head's ``logits(hidden, positions)``)."""

import random
from dataclasses import dataclass
from typing import List, Optional

import torch

from uer.data.tokenizers import _is_cjk
from uer.data.vocab import Vocab


@dataclass
class ClozeItem:
    src: List[int]                  # [CLS] ... [SEP] token ids with the masks in place
    positions: List[int]            # masked positions, in order
    answer: Optional[int] = None    # the true id of a randomly masked token (None for written masks)


def prepare_item(tokenizer, line: str, seq_length: int, rng: random.Random) -> Optional[ClozeItem]:
    """``seq_length`` counts [CLS] and [SEP].  None for a line without tokens.  Written masks cut
    off by truncation are dropped; a line left with none falls back to a random mask."""
    vocab = tokenizer.vocab
    ids = tokenizer.encode(line.strip())[: seq_length - 2]
    if not ids:
        return None
    src = [vocab.cls_id] + ids + [vocab.sep_id]
    positions = [i for i, t in enumerate(src) if t == vocab.mask_id and 0 < i < len(src) - 1]
    if positions:
        return ClozeItem(src, positions)
    specials = set(vocab.special_ids)
    candidates = [i for i in range(1, len(src) - 1) if src[i] not in specials] or list(range(1, len(src) - 1))
    position = rng.choice(candidates)
    answer = src[position]
    src[position] = vocab.mask_id
    return ClozeItem(src, [position], answer)


@torch.inference_mode()
def predict_topn(model, items: List[ClozeItem], topn: int, batch_size: int, pad_id: int,
                 device: torch.device) -> List[List[List[int]]]:
    """For every item, for every masked position, the ``topn`` most likely token ids (best first)."""
    model.eval()
    mlm = model.target._modules["mlm"]
    out: List[List[List[int]]] = []
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        length = max(len(item.src) for item in batch)
        masks = max(len(item.positions) for item in batch)
        src = torch.full((len(batch), length), pad_id, dtype=torch.long)
        seg = torch.zeros((len(batch), length), dtype=torch.long)
        positions = torch.zeros((len(batch), masks), dtype=torch.long)   # unused slots point at [CLS]
        for i, item in enumerate(batch):
            src[i, :len(item.src)] = torch.tensor(item.src)
            seg[i, :len(item.src)] = 1
            positions[i, :len(item.positions)] = torch.tensor(item.positions)
        src, seg, positions = src.to(device), seg.to(device), positions.to(device)
        logits = mlm.logits(model.encode(src, seg), positions)           # (B, masks, vocab_size)
        k = min(topn, logits.size(-1))
        top = logits.float().topk(k, dim=-1).indices.cpu()
        for i, item in enumerate(batch):
            out.append([top[i, j].tolist() for j in range(len(item.positions))])
    return out


def join_tokens(tokens: List[str], vocab: Vocab) -> str:
    """The sentence as UER-py prints it for Chinese (tokens glued together), readable elsewhere:
    no space next to a CJK character or before a WordPiece continuation (its ## dropped);
    SentencePiece pieces are glued and their word-start marks become spaces."""
    if vocab.continuation_style == "spm":
        return "".join(tokens).replace("\u2581", " ").strip()
    text = ""
    for i, token in enumerate(tokens):
        if i == 0:
            text = token
        elif vocab.continuation_style == "wordpiece" and token.startswith("##") and len(token) > 2:
            text += token[2:]
        elif _single_cjk(token) or _single_cjk(tokens[i - 1]):
            text += token
        else:
            text += " " + token
    return text


def _single_cjk(token: str) -> bool:
    return len(token) == 1 and _is_cjk(ord(token))


def format_item(item: ClozeItem, predictions: List[List[int]], vocab: Vocab) -> str:
    """UER-py's record: the masked sentence, ``Predicted answer: t1 t2 ...`` (here one line per
    masked position), ``Correct answer: t`` for a randomly masked token, and a blank line."""
    lines = [join_tokens([vocab.id_to_token(i) for i in item.src], vocab)]
    for top in predictions:
        lines.append("Predicted answer: " + " ".join(vocab.id_to_token(i) for i in top))
    if item.answer is not None:
        lines.append("Correct answer: " + vocab.id_to_token(item.answer))
    return "\n".join(lines) + "\n\n"

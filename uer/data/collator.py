"""Turn a list of dataset instances into a training batch of tensors.

The collator pads instances and builds segment ids; what each configured target needs (labels,
masked-LM corruption, next-token shift) is declared on the target class and run as its collate step
(uer.targets.batch_fields), so there is no per-target switch here.  It works on whole (B, L) arrays.  Randomness comes from
``uer.data.random`` keyed by (seed, epoch, instance index), so a batch is a pure function of its
instance indices and epoch: reproducible across worker counts, ranks and resumes.
"""

import math
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

import uer.targets  # noqa: F401  (fills TARGETS: each target declares its batch fields)
from uer.config import MaskingConfig
from uer.data.documents import DOC_START_STREAM, document_fields
from uer.errors import ConfigError
from uer.layers.host_lengths import HostLengths
from uer.registry import TARGETS
from uer.targets.batch_fields import BatchFields, CollateState


def _declared(target_cls, attr: str):
    """A target's declaration, or the default (asks nothing) for one that does not mix BatchFields in."""
    return getattr(target_cls, attr, getattr(BatchFields, attr))


class PretrainCollator:
    def __init__(self, vocab, targets: Sequence[str], masking: MaskingConfig, seed: int,
                 fields: Sequence[str], seq_length: int, max_length: int = 0, pad_multiple: int = 8,
                 noiser: Optional[Callable] = None, tgt_vocab=None):
        """``seq_length``: the dataset's sequence length, which fixes the number of MLM prediction
        slots per sequence (so an instance's mask never depends on the batch it is in);
        ``max_length``: the model's max_seq_length, which padding never exceeds;
        ``noiser``: the dataset's collate-time noising (uer.data.noising.build_noiser), run on the
        instances' token arrays before padding: ``noiser(srcs, tgts, indices, epoch) -> (srcs, tgts)``,
        or ``(srcs, tgts, extras)`` with a dict per instance of fields added to it (GLM);
        ``tgt_vocab``: the decoder side's vocabulary (mt), for its start ([CLS]) and padding ids."""
        self.noiser = noiser
        self.tgt_start_id = (tgt_vocab or vocab).cls_id
        self.tgt_pad_id = (tgt_vocab or vocab).pad_id
        self.targets = list(targets)
        self.masking = masking
        self.seed = seed
        self.seq_length = seq_length
        self.max_length = max_length
        self.pad_multiple = pad_multiple
        # Padding is hidden from attention and loss, so any id serves: a LLaMA-style vocabulary has no
        # padding token and pads with its end token, as Hugging Face's recipes do.
        self.pad_id = vocab.pad_id if vocab.pad_id is not None else vocab.sep_id
        self.mask_id = vocab.mask_id
        self.target_classes = [TARGETS.get(name, where="the model config's 'target'") for name in self.targets]
        for name, target in zip(self.targets, self.target_classes):
            if _declared(target, "vocab_tokens"):
                vocab.require(_declared(target, "vocab_tokens"), purpose=f"the {name} target")
        special = np.zeros(len(vocab), dtype=bool)
        special[list(vocab.special_ids)] = True
        # The sentinels a T5 noiser writes into inputs mark structure, not text: never masked or drawn
        # as random replacements (metro: the generator corrupts the span-corrupted inputs).
        special[[int(i) for i in getattr(noiser, "sentinels", ())]] = True
        self.special = special
        self.continuation = np.asarray(vocab.is_continuation, dtype=bool)
        self.random_ids = np.nonzero(~special)[0].astype(np.int64)
        for name, target in zip(self.targets, self.target_classes):
            for needed in _declared(target, "instance_fields"):
                if needed not in fields:
                    hint = _declared(target, "instance_fields_hint")
                    raise ConfigError(f"target '{name}' needs instances with a '{needed}' field, but the "
                                      f"dataset has fields {list(fields)}; build it with a processor that "
                                      f"provides one{f' ({hint})' if hint else ''}")
        # Tokens each instance holds after its input (lm: the next token, which is only a label).
        self.lookahead = max((_declared(t, "lookahead") for t in self.target_classes), default=0)

    def max_predictions(self) -> int:
        """Prediction slots per sequence.  Token and whole-word masking predict at most
        round(n * mask_prob) tokens; span counts vary, so they get twice the expected room."""
        expected = max(1, math.ceil(self.seq_length * self.masking.mask_prob))
        return 2 * expected if self.masking.span_masking else expected

    def __call__(self, items: List[Dict[str, object]], indices: Sequence[int], epoch: int) -> Dict[str, torch.Tensor]:
        seqs = [np.asarray(item["src"]) for item in items]
        # Encoder-decoder instances: what the decoder predicts, from the tgt stream or the noiser.
        tgts = [np.asarray(item["tgt"]) for item in items] if "tgt" in items[0] else None
        if self.noiser is not None:
            noised = self.noiser(seqs, tgts, indices, epoch)
            seqs, tgts = noised[0], noised[1]
            if len(noised) > 2:   # per-instance fields the noiser made (GLM: seg_a_len, lm_labels, positions)
                items = [{**item, **extra} for item, extra in zip(items, noised[2])]
        # Instances with their own labels (lm_labels) hold no lookahead token to cut off.
        cut = self.lookahead and tgts is None and "lm_labels" not in items[0]
        inputs = [s[: len(s) - self.lookahead] for s in seqs] if cut else seqs
        longest = max(len(s) for s in inputs)
        length = int(math.ceil(longest / self.pad_multiple) * self.pad_multiple)
        if self.max_length:
            length = max(longest, min(length, self.max_length))
        batch = len(items)
        src = np.full((batch, length), self.pad_id, dtype=np.int64)
        seg = np.zeros((batch, length), dtype=np.int64)
        for i, s in enumerate(inputs):
            src[i, : len(s)] = s
            a_len = int(items[i].get("seg_a_len", len(s)))
            seg[i, : min(a_len, len(s))] = 1
            seg[i, a_len: len(s)] = 2
        word_cont = None
        if "word_cont" in items[0]:
            word_cont = np.zeros((batch, length), dtype=bool)
            for i, s in enumerate(inputs):
                word_cont[i, : len(s)] = np.asarray(items[i]["word_cont"])[: len(s)] > 0
        # Sequences packed from several documents, attending within each (llm_pretrain --document_mask).
        documents = document_fields(items, inputs, length) if DOC_START_STREAM in items[0] else {}
        state = CollateState(items=items, indices=np.asarray(indices), epoch=epoch, src=src, seg=seg,
                             collator=self, out={}, word_cont=word_cont, tgt=tgts)
        for target in self.target_classes:       # each adds its fields (mlm also corrupts src)
            _declared(target, "collate")(state)
        out = state.out
        if "positions" in items[0]:     # (2, n) per instance: GLM's 2D positions, 0 at padding
            positions = np.zeros((batch, 2, length), dtype=np.int64)
            for i, item in enumerate(items):
                p = np.asarray(item["positions"])
                positions[i, :, : p.shape[1]] = p
            out["positions"] = torch.from_numpy(positions)
        out["src"] = torch.from_numpy(state.src)
        out["seg"] = torch.from_numpy(seg)
        out["tokens"] = torch.tensor(int((seg > 0).sum()))   # real (non-pad) input tokens
        out["seg_lengths"] = HostLengths.of(seg)    # on the host: the model's masks need no sync
        out.update(documents)
        return out

"""Turn a list of dataset instances into a training batch of tensors.

The collator is the only place where instances are padded, segment ids are built and inputs are
corrupted for masked-LM; it works on whole (B, L) arrays.  Randomness comes from
``uer.data.random`` keyed by (seed, epoch, instance index), so a batch is a pure function of its
instance indices and epoch: reproducible across worker counts, ranks and resumes.
"""

import math
from typing import Dict, List, Sequence

import numpy as np
import torch

from uer.config import MaskingConfig
from uer.data.masking import mask_batch
from uer.errors import ConfigError

# What each target needs from the instance fields.
TARGET_FIELDS = {"sp": "label", "cls": "label"}


class PretrainCollator:
    def __init__(self, vocab, targets: Sequence[str], masking: MaskingConfig, seed: int,
                 fields: Sequence[str], seq_length: int, max_length: int = 0, pad_multiple: int = 8):
        """``seq_length``: the dataset's sequence length, which fixes the number of MLM prediction
        slots per sequence (so an instance's mask never depends on the batch it is in);
        ``max_length``: the model's max_seq_length, which padding never exceeds."""
        self.targets = list(targets)
        self.masking = masking
        self.seed = seed
        self.seq_length = seq_length
        self.max_length = max_length
        self.pad_multiple = pad_multiple
        self.pad_id = vocab.pad_id
        self.mask_id = vocab.mask_id
        if "mlm" in self.targets:
            vocab.require(("cls", "sep", "pad", "unk", "mask"), purpose="the mlm target")
        special = np.zeros(len(vocab), dtype=bool)
        special[list(vocab.special_ids)] = True
        self.special = special
        self.continuation = np.asarray(vocab.is_continuation, dtype=bool)
        self.random_ids = np.nonzero(~special)[0].astype(np.int64)
        for target in self.targets:
            needed = TARGET_FIELDS.get(target)
            if needed and needed not in fields:
                raise ConfigError(f"target '{target}' needs instances with a '{needed}' field, but the "
                                  f"dataset has fields {list(fields)}; build it with a processor that "
                                  "provides one (bert/albert for sp, cls for cls)")

    def max_predictions(self) -> int:
        """Prediction slots per sequence.  Token and whole-word masking predict at most
        round(n * mask_prob) tokens; span counts vary, so they get twice the expected room."""
        expected = max(1, math.ceil(self.seq_length * self.masking.mask_prob))
        return 2 * expected if self.masking.span_masking else expected

    def __call__(self, items: List[Dict[str, object]], indices: Sequence[int], epoch: int) -> Dict[str, torch.Tensor]:
        lm = "lm" in self.targets
        seqs = [np.asarray(item["src"]) for item in items]
        if lm:   # instances hold seq_length + 1 tokens; input = all but the last, label = all but the first
            inputs, shifted = [s[:-1] for s in seqs], [s[1:] for s in seqs]
        else:
            inputs, shifted = seqs, None
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
        out: Dict[str, torch.Tensor] = {}
        if lm:
            labels = np.full((batch, length), -100, dtype=np.int64)
            for i, s in enumerate(shifted):
                labels[i, : len(s)] = s
            out["lm_labels"] = torch.from_numpy(labels)
        if "mlm" in self.targets:
            maskable = (seg > 0) & ~self.special[src]
            masked = mask_batch(src, np.asarray(indices), epoch, self.seed, maskable=maskable,
                                continuation=self.continuation[src], cfg=self.masking,
                                max_predictions=self.max_predictions(), mask_id=self.mask_id,
                                random_ids=self.random_ids)
            src = masked.src
            out["mlm_positions"] = torch.from_numpy(masked.positions)
            out["mlm_labels"] = torch.from_numpy(masked.labels)
        for target in ("sp", "cls"):
            if target in self.targets:
                out[f"{target}_labels"] = torch.tensor([int(item["label"]) for item in items])
        out["src"] = torch.from_numpy(src)
        out["seg"] = torch.from_numpy(seg)
        out["tokens"] = torch.tensor(int((seg > 0).sum()))   # real (non-pad) input tokens
        return out

"""Task heads (registry ``HEADS``) and the one task model: the pretrained backbone + a head.

A head is an ``nn.Module`` built as ``cls(config, **options)`` whose class declares

* ``prefix``: where its parameters live in a task model's checkpoint (always ``"head."`` here: the
  task model holds it as ``self.head``), so loading a pretraining checkpoint knows what may be new;
* ``hf_kind``: the ``uer.convert`` kind its parameters map to (``"classifier"``, ``"tagger"``,
  ``"question_answering"``) or ``None`` when Hugging Face has no counterpart — conversion reads this
  instead of guessing from key names;
* ``pretrained_prefix``: a prefix of a *pretraining* checkpoint its weights start from (e.g. a
  cloze head reuses ``"target.mlm."``), or ``None`` for a freshly initialised head;

and implements ``forward(hidden, batch) -> outputs`` (logits, scores or vectors: the tensor the
task evaluates and writes) and ``loss(outputs, batch) -> {"loss": ..., <metric>: ...}``.  A head
that needs the backbone more than once per example (two towers, two dropout views, one pass per
choice) overrides ``run(encode, batch)``, which by default encodes ``src``/``seg`` once.
"""

from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from uer.config import ModelConfig
from uer.layers.host_lengths import HostLengths
from uer.layers.pooling import ClassificationHead
from uer.models import build_backbone
from uer.models.model import init_model_weights
from uer.registry import HEADS
from uer.targets.metrics import accuracy

IGNORE = -100      # label of positions that take no part in loss or metrics ([CLS], extra pieces, padding)

Encode = Callable[..., torch.Tensor]      # (src, seg[, host lengths]) -> hidden states


class Head(nn.Module):
    prefix = "head."
    hf_kind: Optional[str] = None
    pretrained_prefix: Optional[str] = None

    def run(self, encode: Encode, batch: dict) -> torch.Tensor:
        return self(encode(batch["src"], batch["seg"], batch.get("seg_lengths")), batch)

    def loss(self, outputs: torch.Tensor, batch: dict) -> Dict[str, torch.Tensor]:
        raise NotImplementedError


class TaskModel(nn.Module):
    """Embedding + encoder of any pretrained checkpoint, plus a head from ``HEADS``.  ``loss``
    replaces the head's own (knowledge distillation); ``head_options`` are the head's keyword
    arguments, saved beside the model so inference and conversion rebuild the same head."""

    def __init__(self, config: ModelConfig, head: str, head_options: Optional[dict] = None,
                 loss: Optional[Callable] = None):
        super().__init__()
        self.config, self.head_name, self.head_options = config, head, dict(head_options or {})
        self.embedding, self.encoder = build_backbone(config)
        self.head = HEADS.get(head, where="the task's head")(config, **self.head_options)
        self._loss = loss
        init_model_weights(self, config)   # the backbone as its pretraining config draws it

    def encode(self, src: torch.Tensor, seg: torch.Tensor, lengths: Optional[HostLengths] = None) -> torch.Tensor:
        """src, seg: (B, L) -> hidden states (B, L, hidden_size); ``lengths``: seg's real-token counts
        on the host (the collator's ``seg_lengths``), so the masks need no device read."""
        return self.encoder(self.embedding(src, seg), seg, lengths=lengths)

    def logits(self, src: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """The head's outputs for a plain (src, seg) batch."""
        return self.head.run(self.encode, {"src": src, "seg": seg})

    def forward(self, batch: dict) -> dict:
        outputs = self.head.run(self.encode, batch)
        out = {"logits": outputs}
        if "labels" in batch:
            out.update((self._loss or self.head.loss)(outputs, batch))
        return out


# ------------------------------------------------------------------------------------------------
# The heads of classification, sequence labelling and extractive QA
# ------------------------------------------------------------------------------------------------

@HEADS.register("classifier")
class ClassifierHead(ClassificationHead, Head):
    """pool -> dense -> tanh -> dense (UER-py's classifier, BERT's pooler + classifier): the cls
    target's ClassificationHead, so parameter names stay head.linear_1 / head.linear_2."""
    hf_kind = "classifier"

    def __init__(self, config: ModelConfig):
        super().__init__(config.hidden_size, config.labels_num, config.pooling)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        return super().forward(hidden, batch["seg"])

    def loss(self, logits: torch.Tensor, batch: dict) -> Dict[str, torch.Tensor]:
        loss = F.cross_entropy(logits.float(), batch["labels"])
        return {"loss": loss, "cls_loss": loss.detach(), "cls_acc": accuracy(logits, batch["labels"])}


@HEADS.register("tagger")
class TaggerHead(Head):
    """dropout -> linear on every position (Hugging Face's token-classification head)."""
    hf_kind = "tagger"

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.hidden_size, config.labels_num)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        return self.output(self.dropout(hidden))

    def loss(self, logits: torch.Tensor, batch: dict) -> Dict[str, torch.Tensor]:
        labels = batch["labels"]
        loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
        real = labels.ne(IGNORE)
        acc = (logits.argmax(-1).eq(labels) & real).sum().float() / real.sum().clamp(min=1)
        return {"loss": loss, "ner_loss": loss.detach(), "ner_acc": acc.detach()}


@HEADS.register("span")
class SpanHead(Head):
    """One linear layer giving (start, end) logits per token (Hugging Face's ``qa_outputs``)."""
    hf_kind = "question_answering"

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.qa_outputs = nn.Linear(config.hidden_size, 2)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        """(B, L, 2): start logits in [..., 0], end logits in [..., 1]."""
        return self.qa_outputs(hidden)

    def loss(self, logits: torch.Tensor, batch: dict) -> Dict[str, torch.Tensor]:
        # Padding can never be a boundary; (start + end) / 2 as in BERT.
        logits = logits.float().masked_fill((batch["seg"] == 0).unsqueeze(-1), -1e4)
        starts, ends = batch["labels"][:, 0], batch["labels"][:, 1]
        loss = (F.cross_entropy(logits[..., 0], starts) + F.cross_entropy(logits[..., 1], ends)) / 2
        acc = (logits[..., 0].argmax(-1).eq(starts) & logits[..., 1].argmax(-1).eq(ends)).float().mean()
        return {"loss": loss, "span_loss": loss.detach(), "span_acc": acc.detach()}


def build_task_model(config: ModelConfig, head: str, head_options: Optional[dict] = None,
                     loss: Optional[Callable] = None) -> TaskModel:
    """The one place task models are built (fine-tuning, inference, conversion, feature extraction),
    so adapters and freezing hook in once (see ``uer.tasks.adapters``)."""
    return TaskModel(config, head, head_options, loss)


@HEADS.register("crf_tagger")
class CrfTaggerHead(TaggerHead):
    """The tagger's per-token emissions scored by a linear-chain CRF over the words (first pieces):
    trained by the CRF's negative log-likelihood; in eval mode the outputs are the Viterbi path as
    one-hot rows, so every consumer that takes ``argmax(-1)`` reads the CRF's decoding.  No Hugging
    Face class holds the transition matrix, so it does not convert (``hf_kind`` None)."""
    hf_kind = None

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        from uer.layers.crf import CRF
        self.crf = CRF(config.labels_num)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        emissions = super().forward(hidden, batch)
        if self.training or "word_mask" not in batch:
            return emissions
        from uer.layers.crf import compact
        words = batch["word_mask"].bool()
        compacted, mask = compact(emissions.float(), words)
        decoded = torch.zeros_like(emissions, dtype=torch.float32)
        for b, path in enumerate(self.crf.decode(compacted, mask)):
            positions = torch.nonzero(words[b]).flatten()[:len(path)]
            decoded[b, positions, torch.tensor(path, dtype=torch.long, device=emissions.device)] = 1.0
        return decoded

    def loss(self, emissions: torch.Tensor, batch: dict) -> Dict[str, torch.Tensor]:
        from uer.layers.crf import compact
        labels = batch["labels"]
        real = labels.ne(IGNORE)
        compacted, mask = compact(emissions, real)
        tags, _ = compact(labels, real)
        loss = self.crf.neg_log_likelihood(compacted, tags, mask).mean()
        acc = (emissions.argmax(-1).eq(labels) & real).sum().float() / real.sum().clamp(min=1)
        return {"loss": loss, "ner_loss": loss.detach(), "ner_acc": acc.detach()}

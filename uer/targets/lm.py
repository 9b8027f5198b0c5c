import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from uer.config import ModelConfig
from uer.registry import TARGETS
from uer.targets.batch_fields import BatchFields, collate_decoder_fields
from uer.targets.metrics import accuracy
from uer.targets.vocab_loss import vocab_cross_entropy


def collate_given_labels(state) -> None:
    """Instances with their own ``lm_labels`` aligned with the input (GLM: -100 on Part A) are predicted
    only where a label is given: ``lm_positions`` (B, K) those positions, ``lm_labels`` (B, K) their
    labels, K the most any instance has (-100 beyond).  Picked here on the host, so the vocabulary
    projection, the costliest step of a small model, runs on Part B alone without a device sync."""
    given = [np.asarray(item["lm_labels"]) for item in state.items]
    rows = [np.flatnonzero(labels != -100) for labels in given]
    count = max(1, max(len(r) for r in rows))
    positions = np.zeros((len(rows), count), dtype=np.int64)
    labels = np.full((len(rows), count), -100, dtype=np.int64)
    for i, (row, own) in enumerate(zip(rows, given)):
        positions[i, : len(row)] = row
        labels[i, : len(row)] = own[row]
    state.out["lm_positions"] = torch.from_numpy(positions)
    state.out["lm_labels"] = torch.from_numpy(labels)


@TARGETS.register("lm")
class LmTarget(BatchFields, nn.Module):
    """Next-token prediction over every position (``lm_labels`` (B, L), -100 where ignored)."""
    lookahead = 1      # instances hold seq_length + 1 tokens: the input is all but the last

    @staticmethod
    def collate(state) -> None:
        """The label at each position is the next token: the instance without its first.  With a
        prefix (the prefixlm processor's ``seg_a_len``) only the continuation is predicted: labels
        start at the prefix's last token.  Instances carrying lm_labels (GLM's blank infilling) use
        them as they are.  Encoder-decoder data (``state.tgt``): the decoder fields
        instead (the model turns tgt_out into the labels)."""
        if state.tgt is not None:
            collate_decoder_fields(state)
            return
        if "lm_labels" in state.items[0]:
            collate_given_labels(state)
            return
        labels = np.full(state.src.shape, -100, dtype=np.int64)
        for i, item in enumerate(state.items):
            following = np.asarray(item["src"])[1:]
            labels[i, : len(following)] = following
            if "seg_a_len" in item:
                labels[i, : max(int(item["seg_a_len"]) - 1, 0)] = -100
            if "loss_mask" in item:       # llm_sft: only response tokens (and their end token) are predicted
                labels[i, : len(following)][np.asarray(item["loss_mask"])[1:] == 0] = -100
            if "doc_start" in item:       # llm_pretrain --document_mask: no label across a document boundary
                labels[i, : len(following)][np.asarray(item["doc_start"])[1:] > 0] = -100
        state.out["lm_labels"] = torch.from_numpy(labels)

    def __init__(self, config: ModelConfig, embedding: nn.Module):
        super().__init__()
        self.vocab_size = config.vocab_size
        self.tied = config.tie_weights   # validate() refuses tying across different widths
        if self.tied:
            self._embedding = [embedding]
        else:
            self.output_weight = nn.Parameter(torch.empty(config.padded_vocab_size, config.hidden_size))
            nn.init.normal_(self.output_weight, std=0.02)
        self.output_bias = nn.Parameter(torch.zeros(config.padded_vocab_size)) \
            if config.has_lmtarget_bias else None
        # T5 (Mesh TensorFlow) rescales the decoder output before its tied projection.
        self.hidden_scale = config.hidden_size ** -0.5 if (config.scale_tied_output and self.tied) else 1.0
        self.fused_loss = config.fused_lm_loss
        self.loss_chunk_size = config.lm_loss_chunk_size   # 0: the whole logits tensor at once

    def output_weight_tensor(self) -> torch.Tensor:
        return self._embedding[0].word_weight() if self.tied else self.output_weight

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.hidden_scale != 1.0:
            hidden = hidden * self.hidden_scale
        return F.linear(hidden, self.output_weight_tensor(), self.output_bias)[..., : self.vocab_size]

    def forward(self, hidden: torch.Tensor, batch: dict) -> dict:
        labels = batch["lm_labels"]
        if "lm_positions" in batch:      # only the predicted positions (collate_given_labels)
            positions = batch["lm_positions"]
            hidden = hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.size(-1)))
        if self.fused_loss:
            if self.hidden_scale != 1.0:
                hidden = hidden * self.hidden_scale
            loss, acc = vocab_cross_entropy(hidden, self.output_weight_tensor(), self.output_bias, labels,
                                            self.vocab_size, self.loss_chunk_size)
            return {"loss": loss, "lm_loss": loss.detach(), "lm_acc": acc}
        logits = self.logits(hidden)
        loss = F.cross_entropy(logits.reshape(-1, self.vocab_size).float(), labels.reshape(-1),
                               ignore_index=-100)
        return {"loss": loss, "lm_loss": loss.detach(), "lm_acc": accuracy(logits, labels)}

    def flops_per_token(self, config: ModelConfig, predicted_fraction: float) -> float:
        return 6.0 * config.hidden_size * config.padded_vocab_size

import torch
import torch.nn.functional as F
from torch import nn

from uer.config import ModelConfig
from uer.data.masking import mask_batch
from uer.layers.activations import ACTIVATIONS
from uer.layers.enhanced_mask_decoder import EnhancedMaskDecoder
from uer.layers.norms import build_norm
from uer.registry import TARGETS
from uer.targets.batch_fields import BatchFields
from uer.targets.metrics import accuracy
from uer.targets.vocab_loss import vocab_cross_entropy


@TARGETS.register("mlm")
class MlmTarget(BatchFields, nn.Module):
    """Masked-LM head.  Logits are computed only at the selected positions: the collator passes a
    fixed number of positions per sequence (``mlm_positions`` (B, P), ``mlm_labels`` (B, P) with -100
    for unused slots), so shapes stay static and the vocabulary projection — the dominant cost of a
    small model — runs on ~15% of the tokens instead of all of them."""
    vocab_tokens = ("cls", "sep", "pad", "unk", "mask")

    @staticmethod
    def collate(state) -> None:
        """Dynamic masking: corrupt ``state.src`` and add the prediction slots.  Specials and padding
        are never selected; the RNG is keyed by (seed, epoch, instance index)."""
        c = state.collator
        maskable = (state.seg > 0) & ~c.special[state.src]
        masked = mask_batch(state.src, state.indices, state.epoch, c.seed, maskable=maskable,
                            continuation=c.continuation[state.src] if state.word_cont is None else state.word_cont,
                            cfg=c.masking,
                            max_predictions=c.max_predictions(), mask_id=c.mask_id, random_ids=c.random_ids)
        state.src = masked.src
        state.out["mlm_positions"] = torch.from_numpy(masked.positions)
        state.out["mlm_labels"] = torch.from_numpy(masked.labels)

    def __init__(self, config: ModelConfig, embedding: nn.Module):
        super().__init__()
        self.vocab_size = config.vocab_size
        self.linear_1 = nn.Linear(config.hidden_size, config.emb_size, bias=config.mlm_dense_bias)
        self.act = ACTIVATIONS[config.hidden_act]
        self.norm = build_norm(config.layernorm, config.emb_size, config.layernorm_eps, config.layernorm_bias)
        self.tied = config.tie_weights
        if self.tied:
            self._embedding = [embedding]   # a list: the tied table is not registered twice
        else:
            self.output_weight = nn.Parameter(torch.empty(config.padded_vocab_size, config.emb_size))
            nn.init.normal_(self.output_weight, std=0.02)
        self.output_bias = nn.Parameter(torch.zeros(config.padded_vocab_size))
        # DeBERTa's enhanced mask decoder: absolute positions + the encoder's last layer re-run at the
        # selected positions (bound to the encoder by the model, see bind_encoder).
        self.decoder = EnhancedMaskDecoder(config) if config.enhanced_mask_decoder else None
        self.fused_loss = config.fused_lm_loss
        self.loss_chunk_size = config.lm_loss_chunk_size   # 0: the whole logits tensor at once

    def bind_encoder(self, encoder: nn.Module) -> None:
        if self.decoder is not None:
            self.decoder.bind(encoder)

    def output_weight_tensor(self) -> torch.Tensor:
        return self._embedding[0].word_weight() if self.tied else self.output_weight

    def logits(self, hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """hidden (B, L, H), positions (B, P) -> logits (B, P, vocab_size).  With the enhanced mask
        decoder ``hidden`` is not read: the decoder starts from the encoder's last-layer input."""
        return F.linear(self.transform(hidden, positions), self.output_weight_tensor(),
                        self.output_bias)[..., : self.vocab_size]

    def transform(self, hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The head's input to the vocabulary projection (B, P, emb_size) at the selected positions."""
        if self.decoder is not None:
            picked = self.decoder(positions)
        else:
            picked = hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.size(-1)))
        return self.norm(self.act(self.linear_1(picked)))

    def scores(self, logits: torch.Tensor, labels: torch.Tensor) -> dict:
        loss = F.cross_entropy(logits.reshape(-1, self.vocab_size).float(), labels.reshape(-1),
                               ignore_index=-100)
        return {"loss": loss, "mlm_loss": loss.detach(), "mlm_acc": accuracy(logits, labels)}

    def forward(self, hidden: torch.Tensor, batch: dict) -> dict:
        if self.fused_loss:
            loss, acc = vocab_cross_entropy(self.transform(hidden, batch["mlm_positions"]),
                                            self.output_weight_tensor(), self.output_bias, batch["mlm_labels"],
                                            self.vocab_size, self.loss_chunk_size)
            return {"loss": loss, "mlm_loss": loss.detach(), "mlm_acc": acc}
        return self.scores(self.logits(hidden, batch["mlm_positions"]), batch["mlm_labels"])

    def flops_per_token(self, config: ModelConfig, predicted_fraction: float) -> float:
        per_prediction = config.hidden_size * config.emb_size + config.emb_size * config.padded_vocab_size
        emd = self.decoder.flops_per_token(config, predicted_fraction) if self.decoder is not None else 0.0
        return 6.0 * per_prediction * predicted_fraction + emd

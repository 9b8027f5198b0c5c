"""A model = embedding + encoder (+ tgt_embedding + decoder) + targets, assembled from the registries by
name; the PRETRAINERS entry for plain models; the config checks that need the registries (module names)."""

import dataclasses
from typing import Optional

import torch
from torch import nn

import uer.encoders  # noqa: F401  (fills ENCODERS)
from uer.config import ModelConfig, register_validator
from uer.embeddings import Embedding
from uer.embeddings.embedding import SharedWordEmbedding
from uer.errors import ConfigError
from uer.layers.host_lengths import HostLengths
from uer.models.size_check import check_fits_in_memory
from uer.models.t5_init import apply_t5_init
from uer.partitioned import gathered
from uer.models.seq2seq import build_decoder_side, seq2seq_lm_labels, target_side_config
from uer.registry import DECODERS, EMBEDDINGS, ENCODERS, PRETRAINERS, TARGET_EMBEDDINGS, TARGETS
from uer.targets import TargetSet

# config.pretrainer of a plain model (embedding + encoder + targets): what every existing config says.
PLAIN = ""


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT initialisation: N(0, 0.02) for matrices and embeddings, zero biases, unit norms.
    Under ZeRO-3 (built in ``deepspeed.zero.Init``) each module's parameters are gathered, drawn
    on every rank from the same RNG stream as an ordinary build, and rank 0's values kept — so a
    partitioned model starts from exactly the weights the same seed gives one process."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            with gathered(m.parameters(recurse=False), modify=True):
                nn.init.normal_(m.weight, std=std)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)


def init_model_weights(module: nn.Module, config: ModelConfig) -> None:
    """The config's initialisation scheme ("init"): BERT's draw, then T5's stds over its parts for "t5"."""
    init_weights(module)
    if config.init == "t5":
        apply_t5_init(module, config.head_size, config.hidden_size)


def build_backbone(config: ModelConfig):
    """The embedding and encoder every model family shares (pretraining model, task models)."""
    if config.vocab_size <= 0:
        raise ConfigError("the model config has no vocab_size; it is set from the vocabulary "
                          "(--vocab_path / --spm_model_path) before the model is built")
    check_fits_in_memory(config)
    return Embedding(config), ENCODERS.get(config.encoder)(config)


@PRETRAINERS.register(PLAIN)
class Model(nn.Module):
    """Besides ``cls(config)``, a PRETRAINERS entry may define ``check_config(config, source)`` (run
    at config load), ``backbone_config(config)`` and ``backbone_state(config, state)`` (what a task
    model keeps of it, see uer.models.pretrained); a plain model needs none of them."""

    def __init__(self, config: ModelConfig, with_target: bool = True):
        super().__init__()
        self.config = config
        self.embedding, self.encoder = build_backbone(config)
        # Encoder-decoder models (config.decoder): the targets sit on the decoder, over its vocabulary.
        self.tgt_embedding, self.decoder = build_decoder_side(config, self.embedding) \
            if with_target else (None, None)
        self.target = TargetSet(target_side_config(config), self.tgt_embedding or self.embedding) \
            if with_target else None
        if self.target is not None and config.enhanced_mask_decoder and "mlm" in self.target.names:
            self.target._modules["mlm"].bind_encoder(self.encoder)   # EMD re-runs the encoder's last layer
        init_model_weights(self, config)

    def use_embedding(self, embedding: Embedding) -> None:
        """Make ``embedding`` (another model's: a composite's shared tables) this model's input embedding,
        and point what reads the old one's table at it: the decoder's shared word table
        (share_embedding) and targets tied to it; their references are plain lists, not submodules."""
        old, self.embedding = self.embedding, embedding
        shared_word = self.tgt_embedding._modules.get("word") if self.tgt_embedding is not None else None
        if isinstance(shared_word, SharedWordEmbedding) and shared_word._owner[0] is old:
            shared_word._owner[0] = embedding
        for head in (self.target.children() if self.target is not None else ()):
            tied = getattr(head, "_embedding", None)
            if tied and tied[0] is old:
                tied[0] = embedding

    def encode(self, src: torch.Tensor, seg: torch.Tensor, positions: Optional[torch.Tensor] = None,
               documents: Optional[torch.Tensor] = None, lengths: Optional[HostLengths] = None) -> torch.Tensor:
        """src, seg: (B, L) -> hidden states (B, L, hidden_size); ``positions``: each token's own
        position ids for the position embedding (GLM's (B, 2, L) 2D positions); ``lengths``: seg's
        real-token counts on the host (the collator's ``seg_lengths``: the mask needs no sync)."""
        emb = self.embedding(src, seg, positions=positions)
        if documents is not None:       # (B, L) packed documents (llm_pretrain --document_mask)
            return self.encoder(emb, seg, documents=documents, lengths=lengths)
        return self.encoder(emb, seg, lengths=lengths)

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, seg: torch.Tensor,
               tgt_seg: Optional[torch.Tensor] = None, cache=None, src_lengths: Optional[HostLengths] = None,
               tgt_lengths: Optional[HostLengths] = None) -> torch.Tensor:
        """Decoder hidden states (B, T, H) for ``tgt_in`` over the encoder output ``memory`` (B, S, H)
        of a source with segment ids ``seg``; ``cache`` (``self.decoder.new_cache()``): tgt_in holds
        only the tokens after ``cache.length`` decoded ones, and the cache is updated.  ``src_lengths``
        / ``tgt_lengths``: seg's / tgt_seg's ``HostLengths`` (the masks then need no sync)."""
        start = cache.length if cache is not None else 0
        emb_seg = tgt_seg if tgt_seg is not None else torch.ones_like(tgt_in)
        return self.decoder(self.tgt_embedding(tgt_in, emb_seg, start), tgt_seg, memory, seg, cache,
                            src_lengths=src_lengths, tgt_lengths=tgt_lengths)

    def logits(self, tgt_in: torch.Tensor, memory: torch.Tensor, seg: torch.Tensor,
               tgt_seg: Optional[torch.Tensor] = None, cache=None) -> torch.Tensor:
        """Next-token logits (B, T, tgt vocab) of an encoder-decoder model (for uer.generation)."""
        return self.target._modules["lm"].logits(self.decode(tgt_in, memory, seg, tgt_seg, cache))

    def forward(self, batch: dict) -> dict:
        if self.target is None:
            raise RuntimeError("this model was built without targets (with_target=False): call "
                               "encode(src, seg) for hidden states")
        # The collator's host-side lengths (uer.layers.host_lengths): no device-to-host sync in the masks.
        lengths = batch.get("seg_lengths")
        hidden = self.encode(batch["src"], batch["seg"], batch.get("positions"), documents=batch.get("doc_ids"),
                             lengths=lengths)
        if self.decoder is not None:
            tgt_seg = batch.get("tgt_seg")
            hidden = self.decode(batch["tgt_in"], hidden, batch["seg"], tgt_seg, src_lengths=lengths,
                                 tgt_lengths=batch.get("tgt_seg_lengths"))
            batch = {**batch, "lm_labels": seq2seq_lm_labels(batch["tgt_out"], tgt_seg)}
        return self.target(hidden, batch)

    def flops_per_token(self, seq_len: int, predicted_fraction: float = 0.15) -> float:
        """Training FLOPs (forward + backward) per input token: 6 x matrix parameters used per token,
        plus attention scores/values (12 x layers x hidden x seq_len, as in the PaLM appendix), plus
        the target heads (MLM heads only run at the predicted fraction of positions).  An
        encoder-decoder model is counted as if the target were as long as the source; the Trainer
        uses the split below (uer.training.flops.BatchFlops), with each side's own tokens and length."""
        return (self.encoder_flops_per_token(seq_len, predicted_fraction)
                + self.decoder_flops_per_token(seq_len, seq_len, predicted_fraction))

    def encoder_flops_per_token(self, seq_len: int, predicted_fraction: float = 0.15) -> float:
        """Per source token: the encoder over ``seq_len`` positions, plus the target heads unless a
        decoder carries them."""
        c = self.config
        dense = 6.0 * self.encoder.matmul_params_per_token()
        attention = 12.0 * c.layers_num * c.heads_num * c.head_size * seq_len
        return dense + attention + (self._head_flops(c, predicted_fraction) if self.decoder is None else 0.0)

    def decoder_flops_per_token(self, tgt_len: int, src_len: int, predicted_fraction: float = 0.15) -> float:
        """Per target token of an encoder-decoder model (0 without a decoder): the decoder's matrices,
        causal self-attention over ``tgt_len`` and cross-attention over ``src_len`` positions, and the
        heads over the target vocabulary."""
        if self.decoder is None:
            return 0.0
        c = self.config
        dense = 6.0 * self.decoder.matmul_params_per_token()
        attention = 12.0 * len(self.decoder.layers) * c.hidden_size * (tgt_len + src_len)   # self + cross
        return dense + attention + self._head_flops(target_side_config(c), predicted_fraction)

    def _head_flops(self, config: ModelConfig, predicted_fraction: float) -> float:
        if self.target is None:
            return 0.0
        return sum(self.target._modules[name].flops_per_token(config, predicted_fraction) for name in self.target.names)


def plain_config(config: ModelConfig, **changes) -> ModelConfig:
    """``config`` with ``changes`` as a plain model's: the sub-models a composite pretrainer builds
    (its generator, its discriminator) are plain models, and so is the backbone a task keeps."""
    return dataclasses.replace(config, pretrainer=PLAIN, **changes)


def build_model(config: ModelConfig, with_target: bool = True) -> nn.Module:
    """The pretraining model for ``config``: its PRETRAINERS entry (a plain Model, ELECTRA ...) built
    as ``entry(config)``; ``with_target=False``: only the backbone (a composite's discriminator's)."""
    if not with_target:
        from uer.models.pretrained import backbone_config
        return Model(backbone_config(config), with_target=False)
    return PRETRAINERS.get(config.pretrainer, where="key 'pretrainer'")(config)


@register_validator
def check_modules(config: ModelConfig, source: str) -> None:
    """Every module a config names is registered; the pretrainer checks its own section."""
    for name in config.embedding:
        EMBEDDINGS.get(name, where=f"{source}, key 'embedding'")
    ENCODERS.get(config.encoder, where=f"{source}, key 'encoder'")
    if config.decoder:
        DECODERS.get(config.decoder, where=f"{source}, key 'decoder'")
    for name in config.tgt_embedding:
        TARGET_EMBEDDINGS.get(name, where=f"{source}, key 'tgt_embedding'")
    if config.relative_position_embedding and config.encoder != "transformer":
        raise ConfigError(f"{source}, key 'relative_position_embedding': T5 buckets are an option of the "
                          f"\"transformer\" encoder, got encoder '{config.encoder}' (it has its own position "
                          "scheme); set \"relative_position_embedding\": false")
    for name in config.target:
        TARGETS.get(name, where=f"{source}, key 'target'")
    pretrainer = PRETRAINERS.get(config.pretrainer, where=f"{source}, key 'pretrainer'")
    check = getattr(pretrainer, "check_config", None)
    if check is not None:
        check(config, source)

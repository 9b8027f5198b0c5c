"""A model = embedding + encoder + targets, assembled from the registries by name; the PRETRAINERS
entry for plain models; the config checks that need the registries (module names)."""

import dataclasses

import torch
from torch import nn

import uer.encoders  # noqa: F401  (fills ENCODERS)
from uer.config import ModelConfig, register_validator
from uer.embeddings import Embedding
from uer.errors import ConfigError
from uer.models.size_check import check_fits_in_memory
from uer.partitioned import gathered
from uer.registry import EMBEDDINGS, ENCODERS, PRETRAINERS, TARGETS
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
        self.target = TargetSet(config, self.embedding) if with_target else None
        if self.target is not None and config.enhanced_mask_decoder and "mlm" in self.target.names:
            self.target._modules["mlm"].bind_encoder(self.encoder)   # EMD re-runs the encoder's last layer
        init_weights(self)

    def encode(self, src: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """src, seg: (B, L) -> hidden states (B, L, hidden_size)."""
        return self.encoder(self.embedding(src, seg), seg)

    def forward(self, batch: dict) -> dict:
        if self.target is None:
            raise RuntimeError("this model was built without targets (with_target=False): call "
                               "encode(src, seg) for hidden states")
        hidden = self.encode(batch["src"], batch["seg"])
        return self.target(hidden, batch)

    def flops_per_token(self, seq_len: int, predicted_fraction: float = 0.15) -> float:
        """Training FLOPs (forward + backward) per input token: 6 x matrix parameters used per token,
        plus attention scores/values (12 x layers x hidden x seq_len, as in the PaLM appendix), plus
        the target heads (MLM heads only run at the predicted fraction of positions)."""
        c = self.config
        dense = 6.0 * self.encoder.matmul_params_per_token()
        attention = 12.0 * c.layers_num * c.heads_num * c.head_size * seq_len
        heads = 0.0
        if self.target is not None:
            for name in self.target.names:
                heads += self.target._modules[name].flops_per_token(c, predicted_fraction)
        return dense + attention + heads


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
    for name in config.target:
        TARGETS.get(name, where=f"{source}, key 'target'")
    pretrainer = PRETRAINERS.get(config.pretrainer, where=f"{source}, key 'pretrainer'")
    check = getattr(pretrainer, "check_config", None)
    if check is not None:
        check(config, source)

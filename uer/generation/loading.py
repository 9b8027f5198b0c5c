"""A generative checkpoint loaded for generation: a plain model with an "lm" target (decoder-only, or
encoder-decoder with the lm target on the decoder), weights strict, other targets ignored; optionally
with a trained LoRA adapter on top (computed beside the base weights, not merged into them)."""

import os
from typing import Optional, Tuple

from uer.config import ModelConfig
from uer.errors import CheckpointError, ConfigError
from uer.models.lora import LoraConfig, apply_lora, load_lora_weights
from uer.models.weights import load_weights, read_weights


def require_checkpoint(weights_path: str) -> None:
    if not os.path.isfile(weights_path):
        raise CheckpointError(f"--load_model_path {weights_path} does not exist; pass a uer checkpoint (.bin / "
                              ".safetensors), e.g. one written by pretrain.py or scripts/convert.py")


def load_generative_model(weights_path: str, config: ModelConfig, seq2seq: bool,
                          adapter: Optional[Tuple[LoraConfig, str]] = None):
    """``adapter``: (its LoRA settings, the adapter file) — a --use_lora run's output over this base."""
    from uer.models import build_model
    from uer.models.pretrained import backbone_config, backbone_source
    require_checkpoint(weights_path)
    script = "scripts/generate_seq2seq.py" if seq2seq else "scripts/generate_lm.py"
    # A composite checkpoint (metro) generates with the model it exports, when that is a language model.
    composite = config if config.pretrainer else None
    if composite is not None:
        config = backbone_config(composite)
        if "lm" not in config.target:
            raise ConfigError(f"{weights_path} is a composite '{composite.pretrainer}' checkpoint whose exported model has "
                              f"targets {config.target}; {script} needs a language model (a config whose "
                              "\"target\" includes \"lm\", or \"pretrainer\": \"metro\")")
    if "lm" not in config.target:
        raise ConfigError(f"the model config of {weights_path} has targets {config.target}; {script} needs a "
                          "language model (a config whose \"target\" includes \"lm\")")
    if seq2seq and not config.decoder:
        raise ConfigError(f"the model config of {weights_path} has no decoder; {script} is for encoder-decoder "
                          "models (T5, BART, MT) — use scripts/generate_lm.py for a decoder-only LM")
    if not seq2seq and config.decoder:
        raise ConfigError(f"the model config of {weights_path} is an encoder-decoder model (decoder "
                          f"'{config.decoder}'); use scripts/generate_seq2seq.py for it")
    if not seq2seq and config.mask != "causal":
        raise ConfigError(f"the model config of {weights_path} has \"mask\": \"{config.mask}\"; {script} "
                          "continues text with a causal LM (\"mask\": \"causal\", e.g. GPT-2)")
    state = backbone_source(composite, weights_path) if composite is not None else weights_path
    state = read_weights(state) if isinstance(state, str) else state
    others = tuple(f"target.{name}." for name in config.target if name != "lm")
    config.target = ["lm"]
    model = build_model(config)
    load_weights(model, state, ignore_unexpected=others, source=weights_path)
    if adapter is not None:
        lora, adapter_path = adapter
        apply_lora(model, lora)
        load_lora_weights(model, adapter_path)
    return model.eval()

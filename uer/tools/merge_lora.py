"""A LoRA adapter folded into the full checkpoint it was trained on (scripts/merge_lora.py).

The base checkpoint is loaded strictly into the model its config describes, the adapter strictly
over it (``load_lora_weights``: the file must hold exactly the adapters these settings create, with
their shapes), and ``merge_lora`` computes W + alpha/r * B A for every adapted layer.  The result
has exactly the base checkpoint's keys, each in the base's dtype (the sum is formed in float32), so
it loads, converts and generates like any uer checkpoint — no adapter flags needed any more."""

from typing import Dict

import torch

from uer.config import ModelConfig
from uer.errors import ConfigError
from uer.models.lora import LoraConfig, apply_lora, load_lora_weights, merge_lora
from uer.models.weights import load_weights, read_weights


def merged_checkpoint(base_path: str, config: ModelConfig, lora: LoraConfig, adapter_path: str,
                      config_source: str = "the model config") -> Dict[str, torch.Tensor]:
    from uer.models import build_model
    if not config.vocab_size:
        raise ConfigError(f"{config_source} has no vocab_size; pass the config written beside the checkpoint "
                          "(<checkpoint>.config.json), which records it")
    base = read_weights(base_path)
    model = build_model(config).float()
    load_weights(model, base, source=base_path)
    apply_lora(model, lora)
    load_lora_weights(model, adapter_path)
    merged_layers = merge_lora(model)
    values = model.state_dict()
    merged = {key: values[key].detach().to(dtype=base[key].dtype, device="cpu").clone() for key in base}
    for key, value in merged.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ConfigError(f"merging {adapter_path} into {base_path} gives non-finite values in {key} "
                              f"(layers merged: {len(merged_layers)}); the adapter or the base is broken")
    return merged

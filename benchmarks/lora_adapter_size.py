"""Adapter file size vs the full model for LoRA r=8 (default targets: attention query + value), fp32,
vocabulary 21,128: python benchmarks/lora_adapter_size.py models/bert/tiny.json models/bert/base.json"""
import io, sys, torch
from uer.config import load_config
from uer.models import build_model
from uer.models.lora import LoraConfig, apply_lora, lora_state_dict
for path in sys.argv[1:]:
    config = load_config(path, {"vocab_size": 21128})
    model = build_model(config)
    full = io.BytesIO(); torch.save(model.state_dict(), full)
    apply_lora(model, LoraConfig(r=8, alpha=16.0))
    adapter = io.BytesIO(); torch.save(lora_state_dict(model), adapter)
    print(f"{path}: adapter {adapter.tell() / 2**20:.2f} MiB vs full {full.tell() / 2**20:.1f} MiB")

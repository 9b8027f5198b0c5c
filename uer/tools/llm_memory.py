"""Memory per GPU of training a decoder-only LLM under DeepSpeed ZeRO-3, computed (not measured).

Parameter counts come from the model itself, built on the meta device (no memory, 70B included):
P in all, and the largest unit ZeRO-3 gathers whole at one time (a transformer layer, the token
embedding, or the untied output projection).  With N GPUs in all, G per node, bf16 or fp16 mixed
precision and AdamW (DeepSpeed's ZeRO-3 optimizer), per GPU:

    weights        2 P / N          16-bit partition of the parameters
    gradients      2 P / N          16-bit partition of the gradients
    optimizer     12 P / N          fp32 master weights + Adam's two moments
    fp32 grads     4 min(P/N, S)    the fp32 gradient of one optimizer sub-group (S = sub_group_size),
                                    formed at the step
    gathered       4 U              the largest unit U gathered whole (16-bit weights + its 16-bit
                                    gradient before the reduce-scatter), as DeepSpeed's estimator counts
    buffers        2 (F + R)        the prefetch and reduce buckets (F = stage3_prefetch_bucket_size,
                                    R = reduce_bucket_size elements, 16-bit)

fp32 training: 4 P / N weights, 4 P / N gradients, 8 P / N Adam moments, no separate master and no
fp32 sub-group copy.  With ``offload_optimizer`` the optimizer lives in CPU memory and the gradients
are reduced straight into an fp32 partition there (4 P / N, no 16-bit gradient partition on the GPU);
with ``offload_param`` the weight partition moves there too: G x (those rows) per node.

Activations do not shrink with ZeRO; they depend on the micro-batch b and sequence length s
(T = b s tokens), hidden size h, key/value width h_kv (kv heads x head size), feed-forward width f,
attention heads a, layers L, vocabulary V, and the bytes of one element w (2 in bf16/fp16, 4 in fp32).
Bytes saved for backward:

    one layer      T (w (6 h + 2 h_kv + 4 f) + 8 h + 4 a + 8)
                   w-sized: both norms' inputs and outputs, q and the k/v of the attention (SDPA's
                   flash kernel keeps no s x s scores), its output, the SwiGLU's gate, up, SiLU and
                   product; fp32: the copy of its input each RMSNorm computes in (8 h, none in fp32
                   training), their 1/rms (8) and the attention's log-sum-exp per head (4 a)
    checkpointed   L T h w + one layer      each layer's input is kept; one layer is recomputed at a time
    no checkpoint  L x one layer
    logits         10 T V                   w-sized logits, the fp32 copy the loss takes, and its fp32
                                            log-softmax (the only one saved, 4 T V, but the three
                                            coexist in the forward and again as gradients in backward);
                                            with "lm_loss_chunk_size": c, 10 min(T, c) V (one chunk at a time)

The per-layer and checkpointed formulas equal the bytes torch's saved-tensor hooks see on a tiny
LLaMA in bf16 on the CPU exactly (tests/unit/test_llm_memory.py), so they describe our modules.

These are estimates of what is allocated, not of the allocator's peak: fragmentation, the CUDA
context (~0.5-1 GiB) and NCCL buffers come on top.
"""

from dataclasses import dataclass, field
from typing import Dict, Optional

import torch
from torch import nn

from uer.config import ModelConfig
from uer.errors import ConfigError

GiB = 2 ** 30


@dataclass
class ModelCounts:
    params: int               # P, each tensor once (tied embeddings counted once)
    largest_unit: int         # U: the most parameters ZeRO-3 gathers at one time
    layers: int
    hidden: int
    kv_width: int
    feedforward: int
    vocab: int
    heads: int
    loss_chunk: int = 0     # config lm_loss_chunk_size: positions whose logits exist at once (0: all)


@dataclass
class MemoryEstimate:
    gpu: Dict[str, float] = field(default_factory=dict)     # bytes per GPU, by row
    cpu_per_node: Dict[str, float] = field(default_factory=dict)

    @property
    def gpu_total(self) -> float:
        return sum(self.gpu.values())

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu_per_node.values())


def _numel(module: nn.Module, seen: Optional[set] = None) -> int:
    seen = set() if seen is None else seen
    total = 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def count_model(config: ModelConfig) -> ModelCounts:
    """Counts from the model built on the meta device (``config.vocab_size`` must be set)."""
    from uer.models import build_model
    with torch.device("meta"):
        model = build_model(config)
    units = [_numel(layer) for layer in model.encoder.layers] + [_numel(model.embedding)]
    units.append(_numel(model.target, seen={id(p) for p in model.embedding.parameters()}))
    head_size = config.hidden_size // config.heads_num
    return ModelCounts(params=_numel(model), largest_unit=max(units), layers=config.layers_num,
                       hidden=config.hidden_size, kv_width=config.kv_heads * head_size,
                       feedforward=config.feedforward_size, vocab=config.vocab_size, heads=config.heads_num,
                       loss_chunk=int(getattr(config, "lm_loss_chunk_size", 0) or 0))


def layer_activation_bytes(counts: ModelCounts, tokens: int, width: int = 2) -> float:
    """Bytes one LLaMA-style layer saves for backward (see the module docstring)."""
    fp32_norm_copies = 8 * counts.hidden if width < 4 else 0
    return float(tokens * (width * (6 * counts.hidden + 2 * counts.kv_width + 4 * counts.feedforward) +
                           fp32_norm_copies + 4 * counts.heads + 8))


def activation_bytes(counts: ModelCounts, micro_batch: int, seq_length: int, checkpointing: bool,
                     width: int = 2) -> Dict[str, float]:
    tokens = micro_batch * seq_length
    layer = layer_activation_bytes(counts, tokens, width)
    layers = counts.layers * tokens * counts.hidden * width + layer if checkpointing else counts.layers * layer
    scored = min(tokens, counts.loss_chunk) if counts.loss_chunk else tokens    # chunked loss: one chunk at a time
    return {"activations": float(layers), "logits": float(10 * scored * counts.vocab)}


def zero3_memory(counts: ModelCounts, ds_config: dict, gpus: int, gpus_per_node: int, micro_batch: int,
                 seq_length: int, checkpointing: bool = True) -> MemoryEstimate:
    """Bytes per GPU (and CPU bytes per node) for a ZeRO-3 DeepSpeed config (the JSON as a dict)."""
    zero = ds_config.get("zero_optimization", {})
    if int(zero.get("stage", 0)) != 3:
        raise ConfigError(f"zero3_memory: the DeepSpeed config is ZeRO stage {zero.get('stage', 0)}, not 3")
    mixed = any(isinstance(ds_config.get(k), dict) and ds_config[k].get("enabled") is True
                for k in ("bf16", "bfloat16", "fp16"))
    offload_optimizer = (zero.get("offload_optimizer") or {}).get("device", "none") not in ("none", None)
    offload_param = (zero.get("offload_param") or {}).get("device", "none") not in ("none", None)
    share = counts.params / gpus
    width = 2 if mixed else 4
    sub_group = float(zero.get("sub_group_size", 1e9))
    rows = {"weights": width * share, "gradients": width * share,
            "optimizer": (12 if mixed else 8) * share,
            "fp32 grads": 4 * min(share, sub_group) if mixed else 0.0}
    if offload_optimizer:   # gradients go straight into the fp32 partition in CPU memory, for every sub-group
        rows.pop("gradients")
        rows["fp32 grads"] = 4 * share
    estimate = MemoryEstimate()
    on_cpu = set()
    if offload_optimizer:
        on_cpu |= {"optimizer", "fp32 grads"}
    if offload_param:
        on_cpu.add("weights")
    for name, value in rows.items():
        if name in on_cpu:
            estimate.cpu_per_node[name] = value * gpus_per_node
        else:
            estimate.gpu[name] = value
    estimate.gpu["gathered"] = 2 * width * counts.largest_unit
    estimate.gpu["buffers"] = width * (float(zero.get("stage3_prefetch_bucket_size", 5e7)) +
                                       float(zero.get("reduce_bucket_size", 5e8)))
    estimate.gpu.update(activation_bytes(counts, micro_batch, seq_length, checkpointing, width))
    return estimate


def deepspeed_model_states(counts: ModelCounts, gpus: int, gpus_per_node: int, offload_optimizer: bool,
                           offload_param: bool) -> Optional[tuple]:
    """DeepSpeed's own ZeRO-3 model-state estimate (cpu bytes per node, gpu bytes per GPU), or None
    when DeepSpeed is not installed.  It counts 18 bytes a parameter (16-bit weights, fp32 gradients,
    fp32 master + moments) and 4 x the largest layer, and pads CPU memory by 1.5."""
    try:
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    except ImportError:
        return None
    per_node = min(gpus, gpus_per_node)
    cpu, gpu, _ = estimate_zero3_model_states_mem_needs(
        counts.params, counts.largest_unit, num_gpus_per_node=per_node, num_nodes=max(1, gpus // per_node),
        cpu_offload=offload_optimizer, cpu_offload_params=offload_param, zero_init=True)
    return cpu, gpu

"""uer/tools/llm_memory.py: the activation formulas equal what torch saves for backward on a tiny LLaMA
(bf16, CPU), the model-state rows follow the ZeRO-3 formulas, and DeepSpeed's own estimator agrees
on what it counts (its offload CPU figure is ours x 1.5, its gathered-layer term is ours; without
offload it charges 18 bytes a parameter where we charge 16 + the fp32 sub-group gradient)."""

import importlib.util
import json
import os

import pytest
import torch

from uer.config import config_from_dict, load_config
from uer.errors import ConfigError
from uer.models import build_model
from uer.tools.llm_memory import (activation_bytes, count_model, deepspeed_model_states, layer_activation_bytes,
                                  zero3_memory)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny(layers, hidden, feedforward, heads=4, kv_heads=2):
    c = json.load(open(os.path.join(ROOT, "models", "llama", "tiny.json")))
    c.update(vocab_size=64, layers_num=layers, hidden_size=hidden, emb_size=hidden, feedforward_size=feedforward,
             heads_num=heads, kv_heads_num=kv_heads)
    return config_from_dict(c, "<test>")


def saved_bytes(config, batch, seq, checkpointing):
    """Bytes of the distinct non-parameter tensors the encoder saves for backward."""
    model = build_model(config).to(torch.bfloat16).train()
    model.encoder.activation_checkpointing = checkpointing
    x = torch.randn(batch, seq, config.hidden_size, dtype=torch.bfloat16, requires_grad=True)
    skip = {p.untyped_storage().data_ptr() for p in model.parameters()} | {x.untyped_storage().data_ptr()}
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.encoder(x, torch.ones(batch, seq, dtype=torch.long))
    return sum(seen.values())


@pytest.mark.parametrize("hidden,feedforward,heads,kv_heads,seq", [(128, 344, 4, 2, 64), (256, 200, 8, 2, 32)])
def test_per_layer_activations_equal_what_torch_saves(hidden, feedforward, heads, kv_heads, seq):
    one, two = (saved_bytes(tiny(n, hidden, feedforward, heads, kv_heads), 2, seq, False) for n in (1, 2))
    counts = count_model(tiny(2, hidden, feedforward, heads, kv_heads))
    assert two - one == layer_activation_bytes(counts, 2 * seq, width=2)
    # checkpointed: each further layer keeps only its input
    one, two = (saved_bytes(tiny(n, hidden, feedforward, heads, kv_heads), 2, seq, True) for n in (2, 3))
    assert two - one == 2 * seq * hidden * 2
    rows = activation_bytes(counts, 2, seq, checkpointing=True)
    assert rows["activations"] == 2 * (2 * seq * hidden * 2) + layer_activation_bytes(counts, 2 * seq)


def test_counts_of_published_configs():
    c = count_model(load_config(os.path.join(ROOT, "models", "llama3", "8b.json"), {"vocab_size": 128256}))
    assert c.params == 8_030_261_248
    assert c.largest_unit == 128256 * 4096            # the embedding (and the untied head) outweigh a layer
    c = count_model(load_config(os.path.join(ROOT, "models", "llama2", "7b.json"), {"vocab_size": 32000}))
    layer = 4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096
    assert c.largest_unit == layer and c.kv_width == 4096
    assert activation_bytes(c, 2, 4096, True)["logits"] == 10 * 8192 * 32000
    c = count_model(load_config(os.path.join(ROOT, "models", "llama2", "7b.json"),
                                {"vocab_size": 32000, "lm_loss_chunk_size": 1024}))
    assert activation_bytes(c, 2, 4096, True)["logits"] == 10 * 1024 * 32000     # one chunk's logits at a time


def shipped(name):
    return json.load(open(os.path.join(ROOT, "models", "deepspeed", name + ".json")))


def test_model_states_follow_the_zero3_formulas_and_deepspeed_estimator():
    counts = count_model(load_config(os.path.join(ROOT, "models", "llama2", "7b.json"), {"vocab_size": 32000}))
    P, N = counts.params, 8
    est = zero3_memory(counts, shipped("zero3_7b_bf16"), N, 8, 1, 4096)
    assert est.gpu["weights"] + est.gpu["gradients"] + est.gpu["optimizer"] == pytest.approx(16 * P / N)
    assert est.gpu["fp32 grads"] == pytest.approx(4 * P / N)          # P/N < sub_group_size 1e9
    assert est.gpu["gathered"] == 4 * counts.largest_unit and not est.cpu_per_node
    off = zero3_memory(counts, shipped("zero3_7b_offload_bf16"), N, 8, 1, 4096)
    assert set(off.gpu) == {"gathered", "buffers", "activations", "logits"}
    assert off.cpu_total == pytest.approx(18 * P)                       # 8 GPUs of 18 P / N on one node
    fp32 = zero3_memory(counts, {"zero_optimization": {"stage": 3}}, N, 8, 1, 4096)
    assert fp32.gpu["weights"] + fp32.gpu["gradients"] + fp32.gpu["optimizer"] + fp32.gpu["fp32 grads"] == \
        pytest.approx(16 * P / N)
    big = zero3_memory(counts, {**shipped("zero3_7b_bf16"), "zero_optimization": {
        **shipped("zero3_7b_bf16")["zero_optimization"], "sub_group_size": 10 ** 8}}, N, 8, 1, 4096)
    assert big.gpu["fp32 grads"] == 4 * 10 ** 8
    with pytest.raises(ConfigError, match="stage 2"):
        zero3_memory(counts, {"zero_optimization": {"stage": 2}}, N, 8, 1, 4096)
    if importlib.util.find_spec("deepspeed") is None:
        pytest.skip("DeepSpeed is not installed: its estimator is not cross-checked")
    cpu, gpu = deepspeed_model_states(counts, N, 8, offload_optimizer=False, offload_param=False)
    assert gpu == pytest.approx(est.gpu["gathered"] + 18 * P / N, abs=1)
    cpu, gpu = deepspeed_model_states(counts, N, 8, offload_optimizer=True, offload_param=True)
    assert cpu == pytest.approx(1.5 * off.cpu_total, abs=2) and gpu == off.gpu["gathered"]

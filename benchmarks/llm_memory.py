"""Computed memory per GPU for training LLaMA-family models under the shipped ZeRO-3 configs.

    python benchmarks/llm_memory.py [--gpus 8] [--gpus_per_node 8] [--micro_batch 1] [--seq_length 4096]

For each model config (built on the meta device for its counts) and each of
models/deepspeed/zero3_7b_bf16.json and zero3_7b_offload_bf16.json it prints the rows of
uer/tools/llm_memory.py (formulas in its docstring and in docs/distributed.md) in GiB, with
activation checkpointing (--activation_checkpointing) and without, and beside them DeepSpeed's own
ZeRO-3 model-state estimate (estimate_zero3_model_states_mem_needs, pure arithmetic, runs without a GPU).
Nothing is measured here.
"""

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from uer.config import load_config  # noqa: E402
from uer.tools.llm_memory import GiB, count_model, deepspeed_model_states, zero3_memory  # noqa: E402

MODELS = [("llama2/7b", 32000), ("llama2/13b", 32000), ("llama2/70b", 32000), ("llama3/8b", 128256),
          ("mistral/7b", 32000), ("qwen2/0.5b", 151936)]
CONFIGS = ["zero3_7b_bf16", "zero3_7b_offload_bf16"]
STATES = ("weights", "gradients", "optimizer", "fp32 grads")


def gib(x: float) -> str:
    return f"{x / GiB:.1f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gpus", type=int, default=8, help="N: GPUs in all")
    p.add_argument("--gpus_per_node", type=int, default=8)
    p.add_argument("--micro_batch", type=int, default=1)
    p.add_argument("--seq_length", type=int, default=4096)
    p.add_argument("--fit_gib", type=float, default=80.0,
                   help="Also print the fewest GPUs (1, 2, 4, 8 ... 256) whose checkpointed total is at most this")
    args = p.parse_args()
    ds = {name: json.load(open(os.path.join(ROOT, "models", "deepspeed", name + ".json"))) for name in CONFIGS}
    print(f"N = {args.gpus} GPUs ({args.gpus_per_node} per node), micro-batch {args.micro_batch} x seq "
          f"{args.seq_length}, bf16, AdamW; GiB per GPU unless marked\n")
    print("| model | P | U (largest gathered) | config | model states (w+g+opt+fp32 g) | gathered + buffers | "
          "activations, checkpointed (no ckpt) | logits | total per GPU, checkpointed (no ckpt) | CPU per node | "
          "DeepSpeed estimator: GPU / CPU per node (model states) | fewest GPUs within --fit_gib | measured |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for rel, vocab in MODELS:
        config = load_config(os.path.join(ROOT, "models", rel + ".json"), {"vocab_size": vocab})
        counts = count_model(config)
        for name in CONFIGS:
            zero = ds[name]["zero_optimization"]
            est = zero3_memory(counts, ds[name], args.gpus, args.gpus_per_node, args.micro_batch, args.seq_length)
            full = zero3_memory(counts, ds[name], args.gpus, args.gpus_per_node, args.micro_batch, args.seq_length,
                                checkpointing=False)
            states = sum(est.gpu.get(k, 0.0) for k in STATES)
            theirs = deepspeed_model_states(counts, args.gpus, args.gpus_per_node, "offload_optimizer" in zero,
                                            "offload_param" in zero)
            theirs = f"{gib(theirs[1])} / {gib(theirs[0])}" if theirs else "DeepSpeed not installed"
            fits = [n for n in (2 ** k for k in range(9)) if zero3_memory(
                counts, ds[name], n, min(n, args.gpus_per_node), args.micro_batch, args.seq_length).gpu_total
                <= args.fit_gib * GiB]
            print(f"| {rel} | {counts.params / 1e9:.2f}B | {counts.largest_unit / 1e6:.0f}M | {name} | {gib(states)} | "
                  f"{gib(est.gpu['gathered'] + est.gpu['buffers'])} | {gib(est.gpu['activations'])} "
                  f"({gib(full.gpu['activations'])}) | {gib(est.gpu['logits'])} | {gib(est.gpu_total)} "
                  f"({gib(full.gpu_total)}) | {gib(est.cpu_total)} | {theirs} | {fits[0] if fits else '> 256'} | "
                  "not yet measured (no GPU) |")


if __name__ == "__main__":
    main()

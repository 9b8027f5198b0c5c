"""The synthetic mode of benchmarks/pretrain_throughput.py (``--synthetic``): our model's step alone
(no data loading, no Trainer) vs ``transformers.BertForPreTraining`` with its full-vocabulary MLM head
(logits over every position, as is standard), in one process on identical random batches with no
padding; median step time, tokens/s and the ratio.  Usage:

    python benchmarks/pretrain_throughput.py --synthetic --config models/bert/small.json --batch_size 32 --seq_length 128
"""

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from uer.config import MaskingConfig, load_config  # noqa: E402
from uer.models import build_model  # noqa: E402
from uer.training.optim import build_optimizer  # noqa: E402


def make_batch(batch_size: int, seq_length: int, vocab_size: int, mask_prob: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(5, vocab_size, (batch_size, seq_length), generator=g)
    seg = torch.ones(batch_size, seq_length, dtype=torch.long)
    seg[:, seq_length // 2:] = 2
    slots = max(1, int(seq_length * mask_prob + 0.999))
    positions = torch.stack([torch.randperm(seq_length, generator=g)[:slots].sort().values
                             for _ in range(batch_size)])
    labels = src.gather(1, positions)
    nsp = torch.randint(0, 2, (batch_size,), generator=g)
    return src, seg, positions, labels, nsp


def time_steps(step, warmup: int, steps: int):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_uer(config, batch, lr):
    model = build_model(config)
    model.train()
    optimizer = build_optimizer(model, lr)
    src, seg, positions, labels, nsp = batch

    def step():
        out = model({"src": src, "seg": seg, "mlm_positions": positions, "mlm_labels": labels, "sp_labels": nsp})
        out["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return model, step


def bench_hf(config, batch, lr):
    from transformers import BertConfig, BertForPreTraining
    hf = BertForPreTraining(BertConfig(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                                       num_hidden_layers=config.layers_num, num_attention_heads=config.heads_num,
                                       intermediate_size=config.feedforward_size,
                                       max_position_embeddings=config.max_seq_length,
                                       attn_implementation="sdpa"))
    hf.train()
    optimizer = torch.optim.AdamW(hf.parameters(), lr=lr, foreach=True)
    src, seg, positions, labels, nsp = batch
    full_labels = torch.full_like(src, -100).scatter(1, positions, labels)
    attention = torch.ones_like(src)

    def step():
        out = hf(input_ids=src, token_type_ids=seg - 1, attention_mask=attention, labels=full_labels,
                 next_sentence_label=nsp)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return hf, step


def main(argv=None):
    p = argparse.ArgumentParser(prog="pretrain_throughput.py --synthetic", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="models/bert/small.json")
    p.add_argument("--vocab_size", type=int, default=21128)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--seq_length", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = load_config(args.config, {"dropout": 0.1})
    config.vocab_size = args.vocab_size
    batch = make_batch(args.batch_size, args.seq_length, args.vocab_size, MaskingConfig().mask_prob, seed=1)
    tokens = args.batch_size * args.seq_length
    rows = []
    model, step = bench_uer(config, batch, 1e-4)
    t_uer = time_steps(step, args.warmup, args.steps)
    rows.append(("uer (MLM logits at masked positions only)", t_uer,
                 model.flops_per_token(args.seq_length) * tokens / t_uer / 1e12))
    try:
        _, step = bench_hf(config, batch, 1e-4)
        t_hf = time_steps(step, args.warmup, args.steps)
        rows.append(("transformers BertForPreTraining (reference)", t_hf, None))
    except ImportError:
        t_hf = None
    print(f"\n{os.path.basename(args.config)}: batch {args.batch_size} x seq {args.seq_length}, vocab "
          f"{args.vocab_size}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'implementation':48s} {'step s':>8s} {'tokens/s':>10s} {'TFLOP/s':>8s} {'speed vs ref':>12s}")
    for name, t, tflops in rows:
        ratio = f"{t_hf / t:.2f}x" if t_hf else "-"
        print(f"{name:48s} {t:8.3f} {tokens / t:10.0f} {tflops if tflops else float('nan'):8.3f} {ratio:>12s}")


if __name__ == "__main__":
    main()

"""Peak memory per rank under DDP and DeepSpeed ZeRO stages 1-3 (and offload), 2 processes on the CPU.

Every row is a real 2-process ``torchrun`` launch of pretrain.py (a BERT-base-sized model by default,
fp32, AdamW) on a tiny generated corpus.  Each rank runs pretrain through a small wrapper that
records, at the first checkpoint save (after the training steps, before checkpointing and rank 0's
consolidation), its peak resident set size so far (``resource.getrusage(...).ru_maxrss``) and its
resident set size at that moment (``/proc/self/statm``), then again after glibc ``malloc_trim(0)``
(freed heap pages returned to the OS: closer to live memory), and its peak again at exit.

Beside it the table prints the ZeRO paper's model-state bytes per rank for P parameters, N ranks,
fp32 AdamW: stage 0 (DDP) 16P (4 weights + 4 grads + 8 Adam moments); ZeRO-1 4P + 4P + 8P/N;
ZeRO-2 4P + 12P/N; ZeRO-3 16P/N.  The measured RSS also holds the Python/torch/DeepSpeed
baseline B (printed separately: one process that has imported them, no model), activations,
communication buckets and allocator slack, so "measured - predicted - B" is that overhead, not an error.
Offload rows (optimizer state in CPU memory via DeepSpeed's CPU Adam) only run when the cpu_adam op
is already built in ~/.cache/torch_extensions (building it takes minutes); on a CPU-only machine
"offloaded" memory is the same RAM, so those rows show the bookkeeping, not a saving.  Usage:

    python benchmarks/zero_memory.py --config models/bert/base.json --vocab_size 1000 \
        --batch_size 2 --seq_length 64 --steps 2
"""

import argparse
import glob
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MiB = 2 ** 20
NPROC = 2

# (name, ZeRO stage or None for DDP, DeepSpeed config or None, needs cpu_adam)
RUNS = [
    ("DDP (stage 0)", 0, None, False),
    ("ZeRO-1", 1, {"zero_optimization": {"stage": 1}}, False),
    ("ZeRO-2", 2, {"zero_optimization": {"stage": 2}}, False),
    ("ZeRO-3", 3, {"zero_optimization": {"stage": 3}}, False),
    ("ZeRO-2 + optimizer offload", 2,
     {"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu", "pin_memory": False}}}, True),
    ("ZeRO-3 + optimizer/param offload", 3,
     {"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu", "pin_memory": False},
                            "offload_param": {"device": "cpu", "pin_memory": False}}}, True),
]


def predicted_bytes(stage: int, params: int, n: int) -> float:
    return {0: 16 * params, 1: 4 * params + 4 * params + 8 * params / n,
            2: 4 * params + 12 * params / n, 3: 16 * params / n}[stage]


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024      # Linux: KiB


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def trimmed_rss_bytes() -> int:
    """RSS after glibc's malloc_trim returns freed heap pages to the OS: closer to live memory (the
    allocator otherwise keeps memory that was freed, e.g. ZeRO-3's released all-gathered parameters)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return current_rss_bytes()


# ------------------------------------------------------------------ the per-rank wrapper (--rank_wrapper)

def run_rank(report_dir: str, argv) -> None:
    """Runs uer.cli.pretrain.main in this rank, then writes this rank's peak RSS."""
    from uer.training.engines.base import Engine
    from uer.training.engines.deepspeed_engine import DeepSpeedEngine
    marks = {}

    def wrap(cls):
        original = cls.save_checkpoint

        def save_checkpoint(self, *a, **k):
            if "train_peak" not in marks:
                marks["train_peak"], marks["train_rss"] = peak_rss_bytes(), current_rss_bytes()
                marks["train_rss_trimmed"] = trimmed_rss_bytes()
            return original(self, *a, **k)
        cls.save_checkpoint = save_checkpoint
    wrap(Engine)
    wrap(DeepSpeedEngine)
    from uer.cli.pretrain import main
    main(argv)
    marks["exit_peak"] = peak_rss_bytes()
    marks.setdefault("train_peak", marks["exit_peak"])
    marks.setdefault("train_rss", current_rss_bytes())
    marks.setdefault("train_rss_trimmed", trimmed_rss_bytes())
    with open(os.path.join(report_dir, f"rank{os.environ.get('RANK', '0')}.json"), "w") as f:
        json.dump(marks, f)


def baseline() -> int:
    """RSS of one process that has imported torch, DeepSpeed and uer (no model, no process group)."""
    code = ("import resource, torch, deepspeed, uer.cli.pretrain\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    return int(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ driver

def cpu_adam_cached() -> bool:
    root = os.environ.get("TORCH_EXTENSIONS_DIR", os.path.expanduser("~/.cache/torch_extensions"))
    return bool(glob.glob(os.path.join(root, "**", "cpu_adam", "cpu_adam*.so"), recursive=True))


def make_dataset(work: str, vocab_size: int, seq_length: int) -> tuple:
    from uer.cli.preprocess import main as preprocess_main
    from uer.quickstart.synthetic import write_corpus
    corpus, vocab, dataset = (os.path.join(work, n) for n in ("corpus.txt", "vocab.txt", "dataset"))
    write_corpus(corpus, documents=60, rng=random.Random(3))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted({w for line in open(corpus, encoding="utf-8") for w in line.split()})
    filler = [f"[unused{i}]" for i in range(max(0, vocab_size - len(specials) - len(words)))]
    with open(vocab, "w", encoding="utf-8") as f:
        f.write("\n".join(specials + words + filler) + "\n")
    preprocess_main(["--corpus_path", corpus, "--vocab_path", vocab, "--dataset_path", dataset,
                     "--seq_length", str(seq_length), "--data_processor", "bert"])
    return vocab, dataset


def launch(work: str, name: str, args, vocab: str, dataset: str, ds_config) -> dict:
    run_dir = os.path.join(work, name.split()[0].replace("(", "").lower() + ("_offload" if "offload" in name else ""))
    os.makedirs(run_dir, exist_ok=True)
    flags = ["--dataset_path", dataset, "--vocab_path", vocab, "--config_path", args.config,
             "--output_model_path", os.path.join(run_dir, "m.bin"), "--total_steps", str(args.steps),
             "--report_steps", "1", "--save_checkpoint_steps", str(args.steps), "--batch_size", str(args.batch_size),
             "--learning_rate", "1e-4", "--seed", "1", "--num_workers", "0", "--dropout", "0"]
    if ds_config is None:
        flags += ["--engine", "ddp"]
    else:
        path = os.path.join(run_dir, "ds.json")
        with open(path, "w") as f:
            json.dump(ds_config, f)
        flags += ["--deepspeed", "--deepspeed_config", path]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(NPROC),
           os.path.abspath(__file__), "--rank_wrapper", run_dir, "--", *flags]
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout,
                          env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    ranks = [json.load(open(os.path.join(run_dir, f"rank{r}.json"))) for r in range(NPROC)]
    return {"ranks": ranks, "seconds": time.time() - start, "out": os.path.join(run_dir, "m.bin")}


def count_params(out: str) -> int:
    from uer.config import load_config
    from uer.models import build_model
    model = build_model(load_config(out + ".config.json"))
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--rank_wrapper":
        rest = sys.argv[3:]
        run_rank(sys.argv[2], rest[1:] if rest[:1] == ["--"] else rest)
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=os.path.join(ROOT, "models/bert/base.json"))
    p.add_argument("--vocab_size", type=int, default=1000)
    p.add_argument("--batch_size", type=int, default=2)
    p.add_argument("--seq_length", type=int, default=64)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS per rank")
    p.add_argument("--timeout", type=int, default=900, help="seconds per launch")
    p.add_argument("--no_offload", action="store_true", help="skip the offload rows even if cpu_adam is built")
    p.add_argument("--work_dir", default=None, help="default: a temporary directory")
    args = p.parse_args()

    work = args.work_dir or tempfile.mkdtemp(prefix="zero_memory_")
    os.makedirs(work, exist_ok=True)
    vocab, dataset = make_dataset(work, args.vocab_size, args.seq_length)
    offload = cpu_adam_cached() and not args.no_offload
    if not offload:
        print("offload rows skipped: " + ("--no_offload" if args.no_offload else
              "the DeepSpeed cpu_adam op is not built in ~/.cache/torch_extensions"), flush=True)

    results = []
    for name, stage, ds_config, needs_cpu_adam in RUNS:
        if needs_cpu_adam and not offload:
            continue
        print(f"running {name} ...", flush=True)
        results.append((name, stage, launch(work, name, args, vocab, dataset, ds_config)))
    params = count_params(results[0][2]["out"])
    base = baseline()

    print(f"\n{params / 1e6:.2f}M parameters (P), N = {NPROC} ranks, fp32 AdamW, batch {args.batch_size} x "
          f"seq {args.seq_length}, {args.steps} steps; baseline B (torch + DeepSpeed + uer imported, no model): "
          f"{base / MiB:.0f} MiB\n")
    print("| run | peak RSS rank 0 / 1 (MiB) | RSS after training rank 0 / 1 (MiB) | same after malloc_trim "
          "(MiB) | predicted model states / rank (MiB) | trimmed - predicted - B, worst rank (MiB) | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, stage, r in results:
        peaks = [rank["train_peak"] / MiB for rank in r["ranks"]]
        steady = [rank["train_rss"] / MiB for rank in r["ranks"]]
        trimmed = [rank["train_rss_trimmed"] / MiB for rank in r["ranks"]]
        pred = predicted_bytes(stage, params, NPROC) / MiB
        print(f"| {name} | {peaks[0]:.0f} / {peaks[1]:.0f} | {steady[0]:.0f} / {steady[1]:.0f} | "
              f"{trimmed[0]:.0f} / {trimmed[1]:.0f} | {pred:.0f} | {max(trimmed) - pred - base / MiB:+.0f} | "
              f"{r['seconds']:.0f} |")
    print("\npeak RSS = ru_maxrss before the first checkpoint save (it includes transients of building the "
          "model and of deepspeed.initialize); RSS after training = resident memory at that moment. "
          "Peak at exit (after checkpointing and rank 0's consolidation):")
    for name, _, r in results:
        exits = (f"rank {i} {rank['exit_peak'] / MiB:.0f} MiB" for i, rank in enumerate(r["ranks"]))
        print(f"  {name}: " + ", ".join(exits))
    print(f"\nwork directory: {work}")


if __name__ == "__main__":
    main()

"""The GPU table of issue 14 in one run (< 8 minutes on an H100/H200): ours vs `transformers`.

Rows (bf16 autocast, fused AdamW, forward + backward + optimizer step on the same random-token batch):

* BERT-base MLM, seq 128 and seq 512 — ours (MLM logits only at the masked positions) vs
  ``BertForMaskedLM`` (SDPA, full-vocabulary logits, labels -100 elsewhere).  The batches have no
  padding, so ``unpad`` would change nothing and is off.
* GPT-2 124M, seq 1024 — ours (``lm_loss_chunk_size``: no full logits tensor) vs ``GPT2LMHeadModel``.
* LLaMA-style 1.1B (models/llama/1b.json, TinyLlama-1.1B's shape), seq 2048 — ours (chunked loss) vs
  ``LlamaForCausalLM``.
* ``uer + compile`` rows (torch.compile, mode default) last, so the budget cuts them first.
* Ceilings measured on the card: a bf16 8192^3 matrix product and a device-to-device copy.

Every row: warmup steps, then N timed steps with one synchronize before and after the window (N
from the warmup's step time and the row's time box).  Tokens/s counts every position (no padding);
TFLOP/s is our documented model-FLOP convention (docs/performance.md) for both systems, so the
ratio of TFLOP/s is the ratio of tokens/s; MFU divides by the device's peak (uer.training.device).
A global budget skips the rows it cannot afford, with a reason.  ``--smoke``: every row on the CPU
with tiny shapes and 1-2 steps (the test suite runs it).  No network: models are built from configs.

    bash benchmarks/gpu_suite.sh                      # on the GPU, writes $OUT/gpu_suite.md
    python benchmarks/gpu_suite.py --smoke --out /tmp/suite
"""

import argparse
import datetime
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, List, Optional

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from uer.config import load_config  # noqa: E402
from uer.models import build_model  # noqa: E402
from uer.training.device import peak_tflops  # noqa: E402
from uer.training.metrics import peak_memory_mib  # noqa: E402
from uer.training.optim import build_optimizer  # noqa: E402

MASK_FRACTION = 0.15


@dataclass
class Shape:
    """One model row: our config, the overrides, the shapes, and the transformers class to compare."""
    name: str
    config: str
    kind: str                 # bert | gpt2 | llama
    batch: int
    seq: int
    vocab: int
    overrides: dict
    cost_s: float             # estimated seconds per system on an H100/H200 (build + warmup + timed)


def full_shapes() -> List[Shape]:
    return [
        Shape("BERT-base MLM, seq 128", "models/bert/base.json", "bert", 256, 128, 30522,
              {"target": ["mlm"], "dropout": 0.1}, 25),
        Shape("BERT-base MLM, seq 512", "models/bert/base.json", "bert", 64, 512, 30522,
              {"target": ["mlm"], "dropout": 0.1}, 25),
        Shape("GPT-2 124M, seq 1024", "models/gpt2/small.json", "gpt2", 32, 1024, 50257,
              {"dropout": 0.0, "lm_loss_chunk_size": 8192}, 30),
        Shape("LLaMA-style 1.1B, seq 2048", "models/llama/1b.json", "llama", 8, 2048, 32000,
              {"lm_loss_chunk_size": 4096}, 50),
    ]


def smoke_shapes() -> List[Shape]:
    tiny = {"layers_num": 1, "hidden_size": 32, "emb_size": 32, "feedforward_size": 64, "heads_num": 2}
    llama_tiny = {**tiny, "kv_heads_num": 1}
    return [
        Shape("BERT-base MLM, seq 128", "models/bert/base.json", "bert", 2, 16, 97, {"target": ["mlm"], **tiny}, 1),
        Shape("BERT-base MLM, seq 512", "models/bert/base.json", "bert", 2, 32, 97, {"target": ["mlm"], **tiny}, 1),
        Shape("GPT-2 124M, seq 1024", "models/gpt2/small.json", "gpt2", 2, 32, 97,
              {"dropout": 0.0, "lm_loss_chunk_size": 16, **tiny}, 1),
        Shape("LLaMA-style 1.1B, seq 2048", "models/llama/1b.json", "llama", 2, 32, 97,
              {"lm_loss_chunk_size": 16, **llama_tiny}, 1),
    ]


# -- batches ----------------------------------------------------------------------------------------------

def random_batch(shape: Shape, device: torch.device, seed: int = 1) -> dict:
    """The same random tokens for both systems: src, and for BERT the masked positions and labels."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(5, shape.vocab, (shape.batch, shape.seq), generator=g)
    batch = {"src": src, "seg": torch.ones_like(src)}
    if shape.kind == "bert":
        slots = max(1, math.ceil(shape.seq * MASK_FRACTION))
        positions = torch.stack([torch.randperm(shape.seq, generator=g)[:slots].sort().values
                                 for _ in range(shape.batch)])
        batch["mlm_positions"], batch["mlm_labels"] = positions, src.gather(1, positions)
    else:
        batch["lm_labels"] = torch.roll(src, -1, dims=1)
    return {k: v.to(device) for k, v in batch.items()}


# -- systems ------------------------------------------------------------------------------------------------

def our_config(shape: Shape):
    config = load_config(os.path.join(ROOT, shape.config), dict(shape.overrides))
    config.vocab_size = shape.vocab
    config.max_seq_length = max(config.max_seq_length, shape.seq)
    return config


def build_ours(shape: Shape, device: torch.device, compile_mode: str = ""):
    config = our_config(shape)
    with torch.device(device):          # weights drawn on the device: a 1B model builds in seconds
        model = build_model(config)
    model.train()
    if compile_mode:
        from uer.training.compile import compile_model
        compile_model(model, compile_mode, device)
    optimizer = build_optimizer(model, 1e-4)
    batch = random_batch(shape, device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step, model.flops_per_token(shape.seq, MASK_FRACTION), (model, optimizer)


def hf_model(shape: Shape, config):
    """The transformers reference with the same shape as our config, SDPA attention."""
    import transformers as tf
    common = dict(vocab_size=shape.vocab, attn_implementation="sdpa")
    if shape.kind == "bert":
        return tf.BertForMaskedLM(tf.BertConfig(
            hidden_size=config.hidden_size, num_hidden_layers=config.layers_num, num_attention_heads=config.heads_num,
            intermediate_size=config.feedforward_size, max_position_embeddings=max(512, shape.seq),
            hidden_dropout_prob=config.dropout, attention_probs_dropout_prob=config.dropout, **common))
    if shape.kind == "gpt2":
        return tf.GPT2LMHeadModel(tf.GPT2Config(
            n_embd=config.hidden_size, n_layer=config.layers_num, n_head=config.heads_num, n_inner=config.feedforward_size,
            n_positions=max(1024, shape.seq), resid_pdrop=config.dropout, embd_pdrop=config.dropout,
            attn_pdrop=config.dropout, bos_token_id=1, eos_token_id=2, **common))
    return tf.LlamaForCausalLM(tf.LlamaConfig(
        hidden_size=config.hidden_size, num_hidden_layers=config.layers_num, num_attention_heads=config.heads_num,
        num_key_value_heads=config.kv_heads_num or config.heads_num, intermediate_size=config.feedforward_size,
        max_position_embeddings=max(2048, shape.seq), rms_norm_eps=config.layernorm_eps, rope_theta=config.rope_theta,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, **common))


def build_hf(shape: Shape, device: torch.device):
    config = our_config(shape)
    with torch.device(device):
        model = hf_model(shape, config)
    model.train()
    optimizer = build_optimizer(model, 1e-4)      # fused AdamW where torch has it, as for ours
    batch = random_batch(shape, device)
    src = batch["src"]
    if shape.kind == "bert":
        labels = torch.full_like(src, -100).scatter(1, batch["mlm_positions"], batch["mlm_labels"])
    else:
        labels = src              # transformers shifts causal-LM labels itself
    attention = torch.ones_like(src)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(input_ids=src, attention_mask=attention, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step, (model, optimizer)


# -- timing -------------------------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Callable[[], None], device: torch.device, warmup: int, box_s: float, max_steps: int,
          min_steps: int) -> tuple:
    """(seconds per step, steps timed): warmup, then N steps between two synchronizes; N from the
    last warmup step's time (the first ones include compiling and allocator growth) so the window
    fits ``box_s``."""
    per_step = 0.0
    for _ in range(warmup):
        start = time.perf_counter()
        step()
        sync(device)        # warmup only: the timed window below has no sync inside
        per_step = time.perf_counter() - start
    steps = int(min(max_steps, max(min_steps, box_s / max(per_step, 1e-6))))
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - start) / steps, steps


def reset_memory(device: torch.device) -> None:
    import gc
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def matmul_ceiling(device: torch.device, n: int, reps: int) -> float:
    """TFLOP/s of a bf16 n x n x n matrix product (random data), mean of ``reps`` after warm-up."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - start) / 1e12


def copy_ceiling(device: torch.device, nbytes: int, reps: int) -> float:
    """GB/s of a device-to-device copy, counting the bytes read and the bytes written."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device).random_()
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        dst.copy_(src)
    sync(device)
    return 2 * nbytes * reps / (time.perf_counter() - start) / 1e9


# -- the table ----------------------------------------------------------------------------------------------

@dataclass
class Row:
    model: str
    system: str
    batch: str = ""
    tokens_per_s: Optional[float] = None
    tflops: Optional[float] = None
    mfu: Optional[float] = None
    peak_mib: Optional[float] = None
    ratio: str = ""
    steps: int = 0
    note: str = ""


def fmt(v: Optional[float], spec: str) -> str:
    return "—" if v is None else format(v, spec)


def git_commit() -> str:
    env = os.environ.get("UER_COMMIT")
    if env:
        return env
    try:
        out = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + (" (+ uncommitted changes)" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git; set UER_COMMIT)"


def render(rows: List[Row], ceilings: List[str], header: List[str]) -> str:
    lines = header + ["", "| model | system | batch x seq | tokens/s | model TFLOP/s | MFU | peak mem (MiB) | "
                          "vs transformers | timed steps | note |", "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r.model} | {r.system} | {r.batch} | {fmt(r.tokens_per_s, ',.0f')} | {fmt(r.tflops, '.4g')} | "
                     f"{fmt(None if r.mfu is None else 100 * r.mfu, '.1f') + ('%' if r.mfu is not None else '')} | "
                     f"{fmt(r.peak_mib, ',.0f')} | {r.ratio} | {r.steps} | {r.note} |")
    return "\n".join(lines + ["", "Ceilings measured on this device:", ""] + ceilings) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.environ.get("OUT") or "benchmarks/out", help="Folder for gpu_suite.md.")
    p.add_argument("--smoke", action="store_true", help="Every row on the CPU, tiny shapes, 1-2 steps.")
    p.add_argument("--budget_s", type=float, default=420.0, help="Whole suite; rows that would pass it are skipped.")
    p.add_argument("--box_s", type=float, default=4.0, help="Timed window per system and row.")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--max_steps", type=int, default=50)
    p.add_argument("--no_compile", action="store_true", help="Leave out the uer + compile rows.")
    p.add_argument("--no_hf", action="store_true", help="Leave out the transformers rows.")
    p.add_argument("--smoke_compile", action="store_true",
                   help="With --smoke, run the uer + compile rows too (minutes on a CPU; not in the tests).")
    args = p.parse_args(argv)
    began = time.perf_counter()
    device = torch.device("cpu") if args.smoke else torch.device("cuda")
    if not args.smoke and not torch.cuda.is_available():
        print("gpu_suite: no CUDA device here; run with --smoke on a CPU", file=sys.stderr)
        return 2
    if args.smoke:
        args.warmup, args.box_s, args.max_steps, min_steps = 1, 0.0, 2, 1
        shapes, compile_rows = smoke_shapes(), args.smoke_compile    # inductor: minutes per model on a CPU
    else:
        min_steps = 3
        shapes, compile_rows = full_shapes(), not args.no_compile
        torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke: tiny shapes, not a measurement)"
    peak = peak_tflops(device, "bf16")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "gpu_suite.md")
    header = [f"# GPU suite{' (--smoke)' if args.smoke else ''}", "",
              f"device: {name}; bf16 peak {fmt(peak, '.1f')} TFLOP/s (uer.training.device)  ",
              f"torch {torch.__version__}; transformers {_hf_version()}; commit {git_commit()}  ",
              f"date {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; "
              f"budget {args.budget_s:.0f} s, time box {args.box_s:.0f} s per system"]
    rows: List[Row] = []
    ceilings: List[str] = []

    def elapsed() -> float:
        return time.perf_counter() - began

    def write() -> None:       # after every row: a run cut short still leaves its table
        with open(path, "w") as f:
            f.write(render(rows, ceilings, header))

    def log(msg: str) -> None:
        print(f"[{elapsed():6.1f} s] {msg}", flush=True)

    def measure(shape: Shape, system: str, build, flops_per_token: Optional[float] = None, cost: float = 1.0,
                extra_warmup: int = 0) -> Row:
        row = Row(shape.name, system, f"{shape.batch} x {shape.seq}")
        if not args.smoke and elapsed() + cost * shape.cost_s > args.budget_s:
            row.note = f"skipped: {elapsed():.0f} s of the {args.budget_s:.0f} s budget spent"
            log(f"{shape.name} / {system}: {row.note}")
            return row
        reset_memory(device)
        try:
            step, flops, keep = build()
            flops = flops if flops is not None else flops_per_token
            seconds, row.steps = timed(step, device, args.warmup + extra_warmup, args.box_s, args.max_steps, min_steps)
        except torch.cuda.OutOfMemoryError:
            row.note = "out of memory: lower the batch in gpu_suite.py"
        except ImportError as e:
            row.note = f"skipped: {e}"
        else:
            row.tokens_per_s = shape.batch * shape.seq / seconds
            row.tflops = flops * row.tokens_per_s / 1e12 if flops else None
            row.mfu = row.tflops / peak if (peak and row.tflops is not None) else None
            row.peak_mib = peak_memory_mib(device)
            del keep, step
        reset_memory(device)
        log(f"{shape.name} / {system}: {fmt(row.tokens_per_s, ',.0f')} tokens/s, {fmt(row.tflops, '.4g')} TFLOP/s "
            f"{row.note}")
        return row

    def ratio(ours: Row, ref: Row) -> str:
        if ours.tokens_per_s and ref.tokens_per_s:
            return f"{ours.tokens_per_s / ref.tokens_per_s:.2f}x"
        return "—"

    log(f"{name}, torch {torch.__version__}, writing {path}")
    pairs = []
    for shape in shapes:
        ours = measure(shape, "uer", lambda: build_ours(shape, device))
        rows.append(ours)
        write()
        ref = Row(shape.name, "transformers", note="skipped: --no_hf")
        if not args.no_hf:
            flops = ours.tflops * 1e12 / ours.tokens_per_s if ours.tokens_per_s else our_model_flops(shape)
            ref = measure(shape, "transformers (SDPA)", lambda: (*_no_flops(build_hf(shape, device)),), flops)
        rows.append(ref)
        ours.ratio, ref.ratio = ratio(ours, ref), ("1.00x" if ref.tokens_per_s else "")
        pairs.append((shape, ref))
        write()

    n = 256 if args.smoke else 8192
    if elapsed() + 10 < args.budget_s or args.smoke:
        tflops = matmul_ceiling(device, n, 2 if args.smoke else 20)
        ceilings.append(f"- bf16 matmul {n}^3: {tflops:.1f} TFLOP/s"
                        + (f" ({100 * tflops / peak:.0f}% of the datasheet peak)" if peak else ""))
        nbytes = 2 ** 20 if args.smoke else 2 ** 32
        gbs = copy_ceiling(device, nbytes, 2 if args.smoke else 20)
        ceilings.append(f"- device copy, {nbytes / 2 ** 20:.0f} MiB: {gbs:,.0f} GB/s (bytes read + written)")
        log("ceilings: " + "; ".join(ceilings))
    else:
        ceilings.append("- skipped: budget spent")
    write()

    if compile_rows:
        for shape, ref in pairs:
            # compiling costs far more than timing: about 4x an eager row (estimated, not yet measured)
            # and the first calls may recompile (a smoke run timed LLaMA's second call recompiling): 2 more warmups
            row = measure(shape, "uer + compile", lambda: build_ours(shape, device, "default"), cost=4.0,
                          extra_warmup=2)
            row.ratio = ratio(row, ref)
            rows.append(row)
            write()
    else:
        rows.append(Row("all", "uer + compile", note="left out (--smoke: inductor takes minutes per model on a CPU)"
                        if args.smoke else "left out (--no_compile)"))
    write()
    log(f"done: {path}")
    print(render(rows, ceilings, header))
    return 0


def _no_flops(built):
    step, keep = built
    return step, None, keep


def our_model_flops(shape: Shape) -> float:
    with torch.device("meta"):
        return build_model(our_config(shape)).flops_per_token(shape.seq, MASK_FRACTION)


def _hf_version() -> str:
    try:
        import transformers
        return transformers.__version__
    except ImportError:
        return "not installed"


if __name__ == "__main__":
    sys.exit(main())

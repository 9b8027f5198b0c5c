#!/usr/bin/env python
"""Pretraining throughput on real data: uer vs UER-py vs a plain ``transformers`` loop, in one run.

On CLUECorpusSmall (the bert processor, Google's Chinese vocabulary), BERT-small, batch 32 x seq 128:

* **uer**: preprocess.py, then pretrain.py's whole path (dataset, collator with dynamic masking, one
  DataLoader worker, model, fused AdamW, the local engine, the Trainer), fp32; then one row per speed
  switch: ``--precision bf16`` (autocast), ``--unpad``, ``--lm_loss_chunk_size N``, and ``--compile``
  with ``--with_compile`` (minutes of compiling on 2 cores);
* **UER-py** (``--uer_py_path``, skipped with the reason when absent): its own preprocess.py (bert,
  ``--dynamic_masking``, which makes its dup_factor 1 like ours) and its own pretrain.py / BertTrainer
  on the CPU with models/bert/small_config.json, same batch, lr, dropout;
* **hf gathered loop**: ``BertForPreTraining`` of the same shape (SDPA) in a hand-written loop whose
  MLM head runs only at the masked positions, NSP, clipping, foreach AdamW, fed our batches.

Each system runs in its own subprocess per round (benchmarks/_runners/), rounds interleaved (uer,
UER-py, hf, switches, then the same in reverse order, ...); every round uses the same seed, so rounds repeat the same work and
their spread is the machine's.  The first ``--warmup`` steps are left out; the ``--steps`` timed steps
include data loading as a real run has it.  Real tokens (``seg > 0``, no padding) are counted on the
host batch, the same way for every system (docs/performance.md); UER-py's own log counts padding and is
not used.  TFLOP/s: uer/training/flops.py's BatchFlops of our model applied to every system's batches
(equal shapes).  Peak RSS: the training process (not its data-loader worker).  Threads: torch's default
(or ``--threads``), the same environment for every system.

    python benchmarks/pretrain_throughput.py --uer_py_path /work/uer-py           # the default run (*)
    python benchmarks/pretrain_throughput.py --smoke                               # under a minute, tiny config
    python benchmarks/pretrain_throughput.py --synthetic [--config ...]           # the old random-batch mode

(*) 3 rounds x 6 rows x (2 + 4 steps) of ~4-6 s on a quiet 2-core machine plus ~5 s of start-up
per run: about 10 minutes (estimated from runs under load 4-6, where it took ~3x as long); ``--rows
uer,uer_py,hf`` for the headline ratios alone, ``--steps`` for longer timed windows.

What differs between the systems, by design of each: UER-py pads every batch to seq_length and builds
its instances with its own RNG (similar statistics, not identical instances, so its real tokens per
batch differ a little: counted, not assumed); ours pads to the batch's longest, rounded up to 8.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(1, os.path.join(HERE, "_runners"))

from throughput_clock import parse_result  # noqa: E402
from throughput_report import RowRuns, table  # noqa: E402

RUNNERS = os.path.join(HERE, "_runners")
UER_PY_KEY, HF_KEY = "uer_py", "hf"


class BenchError(Exception):
    """A bad input: one line, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    data = os.environ.get("UER_DATA_DIR", os.path.join(ROOT, "..", "shared", "data"))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synthetic", action="store_true", help="The old mode: random batches, our model alone vs "
                                                            "BertForPreTraining (other flags: --synthetic --help).")
    p.add_argument("--corpus_path", default=os.path.join(data, "zh", "corpora", "CLUECorpusSmall_bert_sampled.txt"))
    p.add_argument("--vocab_path", default=os.path.join(data, "vocab", "google_zh_vocab.txt"))
    p.add_argument("--config", default=os.path.join(ROOT, "models", "bert", "small.json"))
    p.add_argument("--uer_py_path", default=os.environ.get("UER_PY_PATH", "/work/uer-py"),
                   help="A UER-py checkout ('' to leave it out).")
    p.add_argument("--uer_py_config", default="models/bert/small_config.json", help="Relative to --uer_py_path.")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--seq_length", type=int, default=128)
    p.add_argument("--learning_rate", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2, help="Untimed steps at the start of each run (>= 1).")
    p.add_argument("--steps", type=int, default=4, help="Timed steps per run.")
    p.add_argument("--rows", default="uer,uer_py,hf,uer_bf16,uer_unpad,uer_chunk",
                   help="Comma-separated, in running order: uer, uer_py, hf, uer_bf16, hf_bf16, uer_unpad, uer_chunk, "
                        "uer_compile (the last also with --with_compile).")
    p.add_argument("--with_compile", action="store_true", help="Add the uer --compile row (slow to compile).")
    p.add_argument("--lm_loss_chunk_size", type=int, default=256,
                   help="The uer_chunk row's chunk (positions); below batch x 15%% of seq_length to take effect.")
    p.add_argument("--uer_flags", action="append", default=[], metavar="FLAGS",
                   help="One more uer row with these pretrain.py flags, e.g. --uer_flags '--fused_lm_loss false' "
                        "(repeatable; runs after --rows).")
    p.add_argument("--threads", type=int, default=0, help="torch threads in every runner (0: torch's default).")
    p.add_argument("--processes_num", type=int, default=2, help="preprocess.py workers (both toolkits).")
    p.add_argument("--work_dir", default=None, help="Keep datasets and run files here (default: a temp dir, removed).")
    p.add_argument("--run_timeout", type=int, default=1800, help="Seconds before one runner is stopped.")
    p.add_argument("--out", default=None, help="Also write the report (markdown) to this file.")
    p.add_argument("--json_out", default=None, help="Write every run's raw record (per-step times, tokens, "
                                                    "lengths, losses) to this JSON file.")
    p.add_argument("--smoke", action="store_true",
                   help="Seconds: models/bert/tiny.json (UER-py: tiny_config.json), the corpus's first "
                        "--smoke_lines lines, batch 4 x seq 64, 1 round, 1 warm-up + 2 timed steps.")
    p.add_argument("--smoke_lines", type=int, default=400)
    return p


def apply_smoke(args) -> None:
    args.config = os.path.join(ROOT, "models", "bert", "tiny.json")
    args.uer_py_config = "models/bert/tiny_config.json"
    args.batch_size, args.seq_length, args.rounds, args.warmup, args.steps = 4, 64, 1, 1, 2
    args.lm_loss_chunk_size = 8
    args.processes_num = 1


def check_args(args, rows: List[str]) -> None:
    for what in ("corpus_path", "vocab_path", "config"):     # absolute: the runners' working directories differ
        setattr(args, what, os.path.abspath(getattr(args, what)))
        if not os.path.isfile(getattr(args, what)):
            raise BenchError(f"--{what} {getattr(args, what)}: no such file (set UER_DATA_DIR to the shared data "
                             "directory or pass the path)")
    for what in ("batch_size", "seq_length", "rounds", "warmup", "steps"):
        if getattr(args, what) < 1:
            raise BenchError(f"--{what} must be at least 1, got {getattr(args, what)}")
    known = set(row_specs(args))
    unknown = [r for r in rows if r not in known]
    if unknown:
        raise BenchError(f"--rows: unknown {', '.join(unknown)}; choose from {', '.join(sorted(known))}")


def row_specs(args) -> dict:
    """key -> (label, runner file, extra pretrain.py flags)."""
    chunk = str(args.lm_loss_chunk_size)
    extra = {f"uer_flags{i + 1}": (f"uer {flags}", "uer_run.py", shlex.split(flags))
             for i, flags in enumerate(args.uer_flags)}
    return {**extra, "uer": ("uer, fp32", "uer_run.py", []),
            "uer_py": ("UER-py, fp32", "uer_py_run.py", []),
            "hf": ("transformers loop, MLM head gathered, fp32", "hf_run.py", []),
            "hf_bf16": ("transformers loop, MLM head gathered, bf16 autocast", "hf_run.py", ["--precision", "bf16"]),
            "uer_bf16": ("uer --precision bf16 (autocast)", "uer_run.py", ["--precision", "bf16"]),
            "uer_unpad": ("uer --unpad", "uer_run.py", ["--unpad"]),
            "uer_chunk": (f"uer --lm_loss_chunk_size {chunk}", "uer_run.py", ["--lm_loss_chunk_size", chunk]),
            "uer_compile": ("uer --compile", "uer_run.py", ["--compile"])}


def uer_py_skip_reason(args) -> Optional[str]:
    if not args.uer_py_path:
        return "skipped: no --uer_py_path"
    for need in ("pretrain.py", "preprocess.py", os.path.join("uer", "trainer.py"), args.uer_py_config):
        if not os.path.isfile(os.path.join(args.uer_py_path, need)):
            return f"skipped: {os.path.join(args.uer_py_path, need)} not found (not a UER-py checkout?)"
    return None


def hf_skip_reason() -> Optional[str]:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return "skipped: transformers is not installed"
    return None


def smoke_corpus(path: str, lines: int, out: str) -> str:
    """The first ``lines`` lines, cut at a document boundary (a blank line) past that point."""
    with open(path, encoding="utf-8") as f, open(out, "w", encoding="utf-8") as g:
        for i, line in enumerate(f):
            g.write(line)
            if i >= lines and not line.strip():
                break
    return out


def run(cmd: List[str], cwd: str, what: str, timeout: int) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise BenchError(f"{what} failed (exit {done.returncode}): {tail[0]}")
    return done


def preprocess(args, work: str, corpus: str, with_uer_py: bool) -> dict:
    """Both toolkits' datasets, each by its own preprocess.py; returns paths and timings."""
    out = {"uer": os.path.join(work, "uer_dataset")}
    start = time.perf_counter()
    run([sys.executable, os.path.join(ROOT, "preprocess.py"), "--corpus_path", corpus, "--vocab_path", args.vocab_path,
         "--dataset_path", out["uer"], "--data_processor", "bert", "--seq_length", str(args.seq_length),
         "--processes_num", str(args.processes_num), "--seed", str(args.seed)], ROOT, "our preprocess.py", args.run_timeout)
    out["uer_s"] = time.perf_counter() - start
    if with_uer_py:
        cwd = uer_py_cwd(args, work)
        out["uer_py"] = os.path.join(work, "uer_py_dataset.pt")
        start = time.perf_counter()
        run([sys.executable, os.path.join(os.path.abspath(args.uer_py_path), "preprocess.py"), "--corpus_path", corpus,
             "--vocab_path", args.vocab_path, "--dataset_path", out["uer_py"], "--data_processor", "bert",
             "--seq_length", str(args.seq_length), "--processes_num", str(args.processes_num), "--dynamic_masking",
             "--seed", str(args.seed)], cwd, "UER-py's preprocess.py", args.run_timeout)
        out["uer_py_s"] = time.perf_counter() - start
    return out


def uer_py_cwd(args, work: str) -> str:
    """UER-py reads models/special_tokens_map.json from its working directory and writes its
    preprocessing's temporary files there: a directory of ours with a link to its models/."""
    cwd = os.path.join(work, "uer_py_cwd")
    os.makedirs(cwd, exist_ok=True)
    link = os.path.join(cwd, "models")
    if not os.path.exists(link):
        os.symlink(os.path.join(os.path.abspath(args.uer_py_path), "models"), link)
    return cwd


def runner_spec(args, key: str, extra: List[str], datasets: dict, work_dir: str) -> dict:
    spec = {"name": key, "vocab_path": os.path.abspath(args.vocab_path), "work_dir": work_dir,
            "warmup": args.warmup, "steps": args.steps, "batch_size": args.batch_size,
            "learning_rate": args.learning_rate, "seed": args.seed, "threads": args.threads, "args": extra}
    if key == UER_PY_KEY:
        spec.update(uer_py_path=os.path.abspath(args.uer_py_path), dataset_path=datasets["uer_py"],
                    config_path=os.path.join(os.path.abspath(args.uer_py_path), args.uer_py_config))
    else:
        spec.update(dataset_path=datasets["uer"], config_path=os.path.abspath(args.config))
    return spec


def run_row(args, key: str, runner: str, spec: dict, work: str) -> dict:
    cwd = uer_py_cwd(args, work) if key == UER_PY_KEY else ROOT
    os.makedirs(spec["work_dir"], exist_ok=True)
    timeout = args.run_timeout * (3 if key == "uer_compile" else 1)
    try:
        done = subprocess.run([sys.executable, os.path.join(RUNNERS, runner), json.dumps(spec)], cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"stopped after {timeout} s (--run_timeout)")
    result = parse_result(done.stdout)
    if done.returncode != 0 or result is None:
        lines = [ln for ln in (done.stderr or done.stdout).strip().splitlines() if ln.strip()]
        raise BenchError(f"exit {done.returncode}: {lines[-1][:200] if lines else '(no output)'}")
    shutil.rmtree(spec["work_dir"], ignore_errors=True)
    return result


def batch_flops(args):
    """BatchFlops of our model of --config (built on the meta device: shapes only)."""
    from uer.config import load_config
    from uer.data.tokenizers import build_tokenizer
    from uer.models import build_model
    from uer.training.flops import BatchFlops
    config = load_config(args.config)
    config.vocab_size = len(build_tokenizer("bert", args.vocab_path, None, True).vocab)
    with torch.device("meta"):
        model = build_model(config)
    return BatchFlops.of_model(model, config.masking.mask_prob)


def commit() -> str:
    """HEAD, and whether tracked files differ from it (what ran is then not exactly that commit)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (f" + uncommitted changes in {len(dirty.splitlines())} tracked file(s)" if dirty else "")


def benchmark(args) -> str:
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    if args.with_compile and "uer_compile" not in rows:
        rows.append("uer_compile")
    rows += [f"uer_flags{i + 1}" for i in range(len(args.uer_flags))]
    check_args(args, rows)
    load_start, started = os.getloadavg(), time.perf_counter()
    specs = row_specs(args)
    runs = {key: RowRuns(key, specs[key][0]) for key in rows}
    if UER_PY_KEY in runs:
        runs[UER_PY_KEY].skipped = uer_py_skip_reason(args)
    for key in (HF_KEY, "hf_bf16"):
        if key in runs:
            runs[key].skipped = hf_skip_reason()
    work = args.work_dir or tempfile.mkdtemp(prefix="pretrain_throughput_")
    os.makedirs(work, exist_ok=True)
    try:
        corpus = smoke_corpus(args.corpus_path, args.smoke_lines, os.path.join(work, "corpus.txt")) \
            if args.smoke else args.corpus_path
        with_py = UER_PY_KEY in runs and runs[UER_PY_KEY].skipped is None
        datasets = preprocess(args, work, corpus, with_py)
        log(started, f"preprocessed: ours {datasets['uer_s']:.1f} s"
            + (f", UER-py's {datasets['uer_py_s']:.1f} s" if with_py else ""))
        for rnd in range(1, args.rounds + 1):
            # Even rounds run the rows in reverse (A B C, C B A, ...): a machine whose load drifts
            # during the run then favours no row by its place in the order.
            for key in (rows if rnd % 2 else rows[::-1]):
                row = runs[key]
                if row.skipped:
                    continue
                label, runner, extra = specs[key]
                spec = runner_spec(args, key, extra, datasets, os.path.join(work, f"run_{key}_{rnd}"))
                try:
                    result = run_row(args, key, runner, spec, work)
                except BenchError as e:
                    row.failures.append(f"round {rnd}: {e}")
                    log(started, f"round {rnd}/{args.rounds} {label}: FAILED {e}")
                    continue
                result["round"] = rnd
                row.rounds.append(result)
                speed = sum(result["tokens"]) / sum(result["step_s"])
                log(started, f"round {rnd}/{args.rounds} {label}: {speed:.0f} real tokens/s, "
                             f"{sum(result['step_s']) / len(result['step_s']):.2f} s/step, "
                             f"loss {result['losses'][0]:.2f} -> {result['losses'][-1]:.2f}")
        if args.json_out:
            with open(args.json_out, "w", encoding="utf-8") as f:
                json.dump({k: {"label": r.label, "rounds": r.rounds, "failures": r.failures, "skipped": r.skipped}
                           for k, r in runs.items()}, f, indent=1)
        flops = batch_flops(args)
        body = table([runs[k] for k in rows], flops, UER_PY_KEY, HF_KEY)
        return header(args, runs, datasets, load_start, started) + "\n\n" + body + "\n"
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


def header(args, runs: dict, datasets: dict, load_start, started: float) -> str:
    threads = sorted({r["threads"] for row in runs.values() for r in row.rounds})
    load_end = os.getloadavg()
    cmd = shlex.join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    lines = [f"## Pretraining throughput: {os.path.basename(args.config)}, batch {args.batch_size} x seq "
             f"{args.seq_length}, {os.path.basename(args.corpus_path)}" + (" (smoke: first lines)" if args.smoke else ""),
             "",
             f"- command: `python {cmd}`",
             f"- torch {torch.__version__}, threads per system {threads or '—'}, commit {commit()}, "
             f"{time.strftime('%Y-%m-%d %H:%M')}",
             f"- load average (1/5/15 min) at start {fmt_load(load_start)}, at end {fmt_load(load_end)}; "
             f"{os.cpu_count()} CPUs; wall {time.perf_counter() - started:.0f} s",
             f"- {args.rounds} round(s), systems interleaved (even rounds in reverse order), each run {args.warmup} "
             f"warm-up + {args.steps} timed steps "
             "(data loading included), seed the same every round",
             f"- preprocess.py: ours {datasets['uer_s']:.1f} s"
             + (f", UER-py's {datasets['uer_py_s']:.1f} s (--dynamic_masking: dup_factor 1, as ours)"
                if "uer_py_s" in datasets else "")]
    return "\n".join(lines)


def fmt_load(load) -> str:
    return "/".join(f"{x:.1f}" for x in load)


def log(started: float, text: str) -> None:
    print(f"[{time.perf_counter() - started:6.0f} s] {text}", flush=True)


def main(argv: Optional[List[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--synthetic" in argv:
        from synthetic import main as synthetic_main
        synthetic_main([a for a in argv if a != "--synthetic"])
        return
    args = build_parser().parse_args(argv)
    if args.smoke:
        apply_smoke(args)
    try:
        report = benchmark(args)
    except BenchError as e:
        raise SystemExit(f"error: {e}")
    print("\n" + report)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(report)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Fine-tuning and inference throughput: our run_classifier / run_classifier_infer vs UER-py's vs a plain
``transformers`` loop (benchmarks/hf_classifier_loop.py), same model shape, data and settings.

Every system runs as its own subprocesses (fine-tune, then inference on its own fine-tuned model),
interleaved over --rounds (the order rotates each round), on the first rows of book_review
train/dev/test_nolabel.  All start from one randomly initialised BERT-mini (models/bert/mini.json,
seed 0), saved here and converted with our scripts to UER-py's keys (its own
models/bert/mini_config.json as --config_path; UER-py's LayerNorm differs numerically from ours, the
shapes do not) and to a Hugging Face directory (BertForSequenceClassification, SDPA).  Same batch size,
seq length, epochs, lr, warmup, seed; fp32.  UER-py pads every row to --seq_length; ours and the
transformers loop pad each batch to its longest row (each system's own behaviour).  "ours --unpad"
is the same run with the encoder's unpadding switch (padding tokens dropped before the layers; the
switch is saved with the model, so its inference runs unpadded too).

Timing comes from the children's own output lines, time-stamped as they arrive (report_steps 1):
training examples/s is a step's examples over its time, the median step of 2..K (a burst of another
process on a shared machine slows a few steps several-fold), and beside it steps 2..K end to end, from
step 1's line to step K's (startup, tokenization, step 1's warm-up, dev evaluation, saving excluded);
inference examples/s is the examples over the time from the "predicting" line (printed after reading,
tokenizing and loading the model) to the prediction file's last write (forward passes + writing).
Wall seconds per process are shown too.  Dev accuracy is a sanity check that each really trains
(from a random start on a few hundred rows it stays near the majority class: the point is speed).

    UER_DATA_DIR=../shared/data python benchmarks/finetune_throughput.py [--uer_py_path /work/uer-py] [--rounds 3]

The default (768 / 256 / 1024 rows, 4 systems, 3 rounds) takes about 7 minutes on the 2-core machine
(384 / 256 / 512 rows took 4.3 minutes at load 1.5, 2026-12-04).
    python benchmarks/finetune_throughput.py --smoke        # ours + transformers, tiny, seconds
"""

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SYSTEMS = ("ours", "ours-unpad", "uer-py", "transformers")
STEP_WINDOW_NOTE = ("train ex/s: from the children's step lines, the median step of 2..K (the ratios use it) and "
                    "steps 2..K end to end; inference ex/s: its startup-over line to the prediction file's last write")


@dataclass
class System:
    """One implementation: how to run its two scripts and which of its output lines mark what."""
    name: str
    cwd: str
    finetune: List[str]
    infer: List[str]
    step_line: str           # a regex matched by one line per optimizer step
    dev_accuracy: str        # a regex whose group 1 is the dev accuracy (last match counts)
    infer_start: str         # the line printed once startup is over
    predictions: str         # the file inference writes (its mtime ends the inference timing)
    env: Dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    started: float                      # time.time() at the start
    wall_s: float
    lines: List[Tuple[float, str]]      # (seconds since the process started, line)
    rc: int


@dataclass
class Result:
    train_ex_s: List[float] = field(default_factory=list)           # from the median step
    train_overall_ex_s: List[float] = field(default_factory=list)   # steps 2..K end to end
    infer_ex_s: List[float] = field(default_factory=list)
    finetune_wall: List[float] = field(default_factory=list)
    infer_wall: List[float] = field(default_factory=list)
    dev_accuracy: List[float] = field(default_factory=list)


def run_child(cmd: List[str], cwd: str, env: Dict[str, str], log_path: str) -> Run:
    """Run ``cmd``, time-stamping each output line as it arrives (stdout and stderr merged)."""
    child_env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **env)
    started, start = time.time(), time.perf_counter()
    lines = []
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + shlex.join(cmd) + "\n")
        proc = subprocess.Popen(cmd, cwd=cwd, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, encoding="utf-8", errors="replace", bufsize=1)
        for line in proc.stdout:
            t = time.perf_counter() - start
            lines.append((t, line.rstrip("\n")))
            log.write(f"{t:8.2f} {line}")
        rc = proc.wait()
    return Run(started, time.perf_counter() - start, lines, rc)


def step_rows(rows: int, batch_size: int, epochs: int) -> List[int]:
    """Examples in each optimizer step, in order (the last batch of an epoch may be short)."""
    full, rest = divmod(rows, batch_size)
    return ([batch_size] * full + ([rest] if rest else [])) * epochs


def train_rate(run: Run, system: System, rows: List[int], log_path: str) -> Tuple[float, float]:
    """(examples/s over steps 2..K, examples/s of the median step among them).  The median is what
    the table shows: on a shared machine another process's burst can slow a few steps five-fold
    (two OpenMP threads on two busy cores), and the median step is the system's own pace."""
    steps = [t for t, line in run.lines if re.search(system.step_line, line)]
    if len(steps) != len(rows):
        raise RuntimeError(f"{system.name}: {len(steps)} step lines for {len(rows)} steps; see {log_path}")
    if len(steps) < 2:
        raise RuntimeError(f"{system.name}: need at least 2 optimizer steps to time (raise --rows)")
    per_step = [n / (b - a) for n, a, b in zip(rows[1:], steps, steps[1:])]
    return sum(rows[1:]) / (steps[-1] - steps[0]), statistics.median(per_step)


def infer_rate(run: Run, system: System, examples: int, prediction_path: str, log_path: str) -> float:
    """From the startup-over line to the prediction file's last write (its mtime): the interpreter's
    teardown after it (~1 s, torch's and transformers' modules) is not inference."""
    start = next((t for t, line in run.lines if re.search(system.infer_start, line)), None)
    if start is None:
        raise RuntimeError(f"{system.name}: no line matching {system.infer_start!r}; see {log_path}")
    return examples / (os.path.getmtime(prediction_path) - run.started - start)


def dev_accuracy(run: Run, system: System) -> float:
    found = [m.group(1) for _, line in run.lines for m in [re.search(system.dev_accuracy, line)] if m]
    return float(found[-1]) if found else float("nan")


def cut_tsv(src: str, dst: str, rows: int) -> int:
    """The header and the first ``rows`` data lines of ``src``; returns how many were written."""
    if not os.path.isfile(src):
        raise SystemExit(f"{src} does not exist (set UER_DATA_DIR or --data_dir to the shared data folder)")
    with open(src, encoding="utf-8") as f:
        lines = [f.readline()] + [line for _, line in zip(range(rows), f)]
    with open(dst, "w", encoding="utf-8") as f:
        f.writelines(lines)
    return len(lines) - 1


def prepare_start(work: str, config_path: str, vocab_path: str, want_uer_py: bool, want_hf: bool) -> None:
    """One random BERT-mini in our format, and the same weights in UER-py's and Hugging Face's."""
    import torch
    from uer.config import load_config, save_config
    from uer.convert.cli import convert_uer_to_hf, convert_uer_to_uer_py
    from uer.data.vocab import Vocab
    from uer.models import build_model
    from uer.models.weights import save_state
    config = load_config(config_path)
    config.vocab_size = len(Vocab.load(vocab_path))
    torch.manual_seed(0)
    model = build_model(config)
    ours = os.path.join(work, "start.bin")
    save_state(model.state_dict(), ours)
    save_config(config, ours + ".config.json")
    if want_uer_py:
        # Same tensors under UER-py's names; its LayerNorm (unbiased std, eps 1e-6) is its own: the
        # converter refuses a model that would compute differently, so it is told what UER-py runs.
        data = json.load(open(ours + ".config.json", encoding="utf-8"))
        data.update(layernorm="uer_py", layernorm_eps=1e-6)
        as_uer_py = os.path.join(work, "start_uer_py_src.json")
        with open(as_uer_py, "w", encoding="utf-8") as f:
            json.dump(data, f)
        convert_uer_to_uer_py(ours, as_uer_py, os.path.join(work, "start_uer_py.bin"), vocab_path=vocab_path)
    if want_hf:
        convert_uer_to_hf(ours, ours + ".config.json", os.path.join(work, "start_hf"), "bert", vocab_path=vocab_path)


def build_systems(a, work: str, vocab: str, labels_num: int) -> List[System]:
    py = sys.executable
    common = ["--batch_size", str(a.batch_size), "--seq_length", str(a.seq_length)]
    train = ["--epochs_num", str(a.epochs), "--learning_rate", str(a.learning_rate), "--warmup", str(a.warmup),
             "--seed", "7"]
    report = ["--report_steps", "1"]      # a line per step: what the timing reads
    data = {k: os.path.join(work, f"{k}.tsv") for k in ("train", "dev", "test")}
    out = {s: os.path.join(work, s) for s in ("ours", "ours-unpad", "uer-py", "transformers")}
    systems = []
    for name in a.systems:
        if name in ("ours", "ours-unpad"):
            # --unpad: the encoder drops the padding tokens (a model config switch, saved with the model,
            # so inference runs unpadded too); same weights, same results up to rounding.
            label, flags = ("ours", []) if name == "ours" else ("ours --unpad", ["--unpad"])
            where = out[name]
            systems.append(System(
                label, ROOT,
                [py, "finetune/run_classifier.py", "--pretrained_model_path", os.path.join(work, "start.bin"),
                 "--config_path", a.config, "--vocab_path", vocab, "--train_path", data["train"],
                 "--dev_path", data["dev"], "--output_model_path", os.path.join(where, "model.bin")]
                + common + train + report + flags,
                [py, "inference/run_classifier_infer.py", "--load_model_path", os.path.join(where, "model.bin"),
                 "--vocab_path", vocab, "--test_path", data["test"],
                 "--prediction_path", os.path.join(where, "predictions.tsv")] + common,
                r"INFO step \d+/\d+ \|", r"^dev accuracy: ([\d.]+)", r"INFO predicting \d+ examples",
                os.path.join(where, "predictions.tsv")))
        elif name == "uer-py":
            config = os.path.join(a.uer_py_path, "models", "bert", "mini_config.json")
            model = os.path.join(out["uer-py"], "model.bin")
            systems.append(System(
                "UER-py", a.uer_py_path,
                [py, "finetune/run_classifier.py", "--pretrained_model_path", os.path.join(work, "start_uer_py.bin"),
                 "--config_path", config, "--vocab_path", vocab, "--train_path", data["train"],
                 "--dev_path", data["dev"], "--output_model_path", model] + common + train + report,
                [py, "inference/run_classifier_infer.py", "--load_model_path", model, "--config_path", config,
                 "--vocab_path", vocab, "--test_path", data["test"], "--labels_num", str(labels_num),
                 "--prediction_path", os.path.join(out["uer-py"], "predictions.tsv")] + common,
                r"Epoch id: \d+, Training steps: \d+", r"Acc\. \(Correct/Total\): ([\d.]+)",
                r"The number of prediction instances", os.path.join(out["uer-py"], "predictions.tsv"),
                # its package is also called uer: only its checkout may be on the path
                env={"PYTHONPATH": a.uer_py_path}))
        else:
            loop = os.path.join(ROOT, "benchmarks", "hf_classifier_loop.py")
            systems.append(System(
                "transformers", ROOT,
                [py, loop, "train", "--model_dir", os.path.join(work, "start_hf"), "--vocab_path", vocab,
                 "--train_path", data["train"], "--dev_path", data["dev"], "--output_dir", out["transformers"]]
                + common + train,
                [py, loop, "infer", "--model_dir", out["transformers"], "--vocab_path", vocab, "--test_path", data["test"],
                 "--prediction_path", os.path.join(work, "hf_predictions.tsv")] + common,
                r"^step \d+/\d+ loss", r"^dev accuracy: ([\d.]+)", r"^predicting \d+ examples",
                os.path.join(work, "hf_predictions.tsv")))
        os.makedirs(out[name], exist_ok=True)
    return systems


def spread(values: List[float], fmt: str = "{:.1f}") -> str:
    if not values:
        return "—"
    med = fmt.format(statistics.median(values))
    return med if len(values) == 1 else f"{med} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def ratio(ours: List[float], ref: List[float]) -> str:
    if not ours or not ref:
        return "—"
    return f"{statistics.median(ours) / statistics.median(ref):.2f}x"


def versions() -> str:
    import torch
    parts = [f"python {platform.python_version()}", f"torch {torch.__version__}"]
    try:
        import transformers
        parts.append(f"transformers {transformers.__version__}")
    except ImportError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        parts.append(f"uer commit {commit}")
    except (OSError, subprocess.CalledProcessError):
        pass
    return ", ".join(parts)


def print_table(a, results: Dict[str, Result], skipped: List[str], load: Tuple[tuple, tuple], sizes: Dict[str, int]):
    uer_py, hf = results.get("UER-py"), results.get("transformers")
    print(f"\n### Fine-tuning / inference throughput, BERT-mini ({os.path.basename(a.config)}), "
          f"book_review {sizes['train']} train / {sizes['dev']} dev / {sizes['test']} inference rows\n")
    print(f"command: `{shlex.join(['python', 'benchmarks/finetune_throughput.py'] + a.argv)}`  ")
    print(f"batch {a.batch_size}, seq {a.seq_length}, {a.epochs} epoch(s), lr {a.learning_rate}, warmup {a.warmup}, "
          f"fp32, {a.rounds} round(s) interleaved; median (range)  ")
    print(f"load average before {load[0][0]:.2f} / {load[0][1]:.2f} / {load[0][2]:.2f}, after "
          f"{load[1][0]:.2f} / {load[1][1]:.2f} / {load[1][2]:.2f}; {os.cpu_count()} CPUs; {versions()}  ")
    print(f"{STEP_WINDOW_NOTE}\n")
    print("| system | train examples/s (median step) | train examples/s (steps 2..K) | inference examples/s "
          "| fine-tune process s | inference process s | dev accuracy |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {spread(r.train_ex_s)} | {spread(r.train_overall_ex_s)} | {spread(r.infer_ex_s)} "
              f"| {spread(r.finetune_wall, '{:.0f}')} | {spread(r.infer_wall, '{:.0f}')} "
              f"| {spread(r.dev_accuracy, '{:.3f}')} |")
    refs = [(name, ref) for name, ref in (("UER-py", uer_py), ("transformers", hf)) if ref is not None]
    ours = [(name, r) for name, r in results.items() if name.startswith("ours")]
    if ours and refs:
        print("\n| ratio | train examples/s | inference examples/s |")
        print("|---|---:|---:|")
        for name, r in ours:
            for ref_name, ref in refs:
                print(f"| {name} / {ref_name} | {ratio(r.train_ex_s, ref.train_ex_s)} "
                      f"| {ratio(r.infer_ex_s, ref.infer_ex_s)} |")
    for reason in skipped:
        print(f"\nskipped: {reason}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--uer_py_path", default="/work/uer-py", help="a UER-py checkout (skipped when absent)")
    p.add_argument("--data_dir", default=os.environ.get("UER_DATA_DIR", os.path.join(ROOT, "..", "shared", "data")))
    p.add_argument("--config", default=os.path.join(ROOT, "models", "bert", "mini.json"))
    p.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated subset of {', '.join(SYSTEMS)}")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rows", type=int, default=768, help="train rows (the first N of train.tsv)")
    p.add_argument("--dev_rows", type=int, default=256)
    p.add_argument("--infer_rows", type=int, default=1024, help="rows of test_nolabel.tsv predicted")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--seq_length", type=int, default=128)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--learning_rate", type=float, default=1e-4)
    p.add_argument("--warmup", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=0, help="OMP/MKL threads of every child (0: their default)")
    p.add_argument("--work_dir", default=None, help="kept after the run (default: a temporary folder, removed)")
    p.add_argument("--smoke", action="store_true",
                   help="ours + transformers, 48 train / 16 dev / 16 inference rows, batch 16, seq 32, 1 round")
    a = p.parse_args(argv)
    a.argv = list(sys.argv[1:] if argv is None else argv)      # shown in the table's header
    if a.smoke:
        a.systems, a.rounds, a.rows, a.dev_rows, a.infer_rows = "ours,transformers", 1, 48, 16, 16
        a.batch_size, a.seq_length = 16, 32
    a.systems = [s.strip() for s in a.systems.split(",") if s.strip()]
    unknown = [s for s in a.systems if s not in SYSTEMS]
    if unknown or not a.systems:
        p.error(f"--systems: unknown {unknown}; choose from {', '.join(SYSTEMS)}")
    for flag in ("rounds", "rows", "dev_rows", "infer_rows", "batch_size", "seq_length", "epochs"):
        if getattr(a, flag) < 1:
            p.error(f"--{flag} must be at least 1")
    if a.rows * a.epochs < 2 * a.batch_size:
        p.error("--rows x --epochs must give at least 2 optimizer steps (2 x --batch_size examples) to time")
    if not os.path.isfile(a.config):
        p.error(f"--config {a.config} does not exist")
    return a


def main(argv=None) -> Dict[str, Result]:
    a = parse_args(argv)
    vocab = os.path.join(a.data_dir, "vocab", "google_zh_vocab.txt")
    if not os.path.isfile(vocab):
        raise SystemExit(f"{vocab} does not exist (set UER_DATA_DIR or --data_dir to the shared data folder)")
    skipped = []
    if "uer-py" in a.systems and not os.path.isfile(os.path.join(a.uer_py_path, "finetune", "run_classifier.py")):
        skipped.append(f"UER-py: no finetune/run_classifier.py under --uer_py_path {a.uer_py_path}")
        a.systems.remove("uer-py")
    if "transformers" in a.systems:
        try:
            import transformers  # noqa: F401
        except ImportError:
            skipped.append("transformers: not installed")
            a.systems.remove("transformers")
    if not a.systems:
        raise SystemExit("nothing to run: " + "; ".join(skipped))
    work = a.work_dir or tempfile.mkdtemp(prefix="finetune_throughput_")
    os.makedirs(work, exist_ok=True)
    try:
        return _run(a, work, vocab, skipped)
    finally:
        if a.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def _run(a, work: str, vocab: str, skipped: List[str]) -> Dict[str, Result]:
    book = os.path.join(a.data_dir, "zh", "book_review")
    sizes = {"train": cut_tsv(os.path.join(book, "train.tsv"), os.path.join(work, "train.tsv"), a.rows),
             "dev": cut_tsv(os.path.join(book, "dev.tsv"), os.path.join(work, "dev.tsv"), a.dev_rows),
             "test": cut_tsv(os.path.join(book, "test_nolabel.tsv"), os.path.join(work, "test.tsv"), a.infer_rows)}
    prepare_start(work, a.config, vocab, "uer-py" in a.systems, "transformers" in a.systems)
    systems = build_systems(a, work, vocab, labels_num=2)
    env = {"OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads)} if a.threads else {}
    rows = step_rows(sizes["train"], a.batch_size, a.epochs)
    results = {s.name: Result() for s in systems}
    load_before = os.getloadavg()
    began = time.perf_counter()
    for round_ in range(a.rounds):
        for system in systems[round_ % len(systems):] + systems[:round_ % len(systems)]:
            r = results[system.name]
            log = os.path.join(work, f"{system.name}.round{round_ + 1}")
            for kind, cmd in (("finetune", system.finetune), ("infer", system.infer)):
                if kind == "infer" and os.path.exists(system.predictions):
                    os.remove(system.predictions)        # its mtime must be this run's
                run = run_child(cmd, system.cwd, {**env, **system.env}, f"{log}.{kind}.log")
                if run.rc != 0:
                    tail = "\n".join(line for _, line in run.lines[-15:])
                    raise SystemExit(f"{system.name} {kind} failed (exit {run.rc}):\n{tail}")
                if kind == "finetune":
                    overall, median_step = train_rate(run, system, rows, log)
                    r.train_ex_s.append(median_step)
                    r.train_overall_ex_s.append(overall)
                    r.finetune_wall.append(run.wall_s)
                    r.dev_accuracy.append(dev_accuracy(run, system))
                else:
                    r.infer_ex_s.append(infer_rate(run, system, sizes["test"], system.predictions, log))
                    r.infer_wall.append(run.wall_s)
            print(f"[{time.perf_counter() - began:6.0f} s] round {round_ + 1}/{a.rounds} {system.name}: train "
                  f"{r.train_ex_s[-1]:.1f} ex/s, inference {r.infer_ex_s[-1]:.1f} ex/s, dev accuracy "
                  f"{r.dev_accuracy[-1]:.3f} (load {os.getloadavg()[0]:.2f})", flush=True)
    print_table(a, results, skipped, (load_before, os.getloadavg()), sizes)
    return results


if __name__ == "__main__":
    main()

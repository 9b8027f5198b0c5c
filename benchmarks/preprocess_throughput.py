#!/usr/bin/env python
"""preprocess.py throughput and memory: uer vs UER-py, side by side, on 1x and 10x a real corpus.

The corpus (CLUECorpusSmall, one sentence per line, documents separated by blank lines, 2 MB) is
copied 1x and 10x into a temporary directory (copies separated by a blank line, so no two documents
merge); then, for ``--rounds`` rounds, each size is preprocessed by our ``preprocess.py`` and by UER-py's
(``--uer_py_path``; skipped with the reason when absent), the two systems' order alternating from round to
round.  Each run is its own subprocess, timed wall-clock from start to exit (imports included: that is what
a user waits for), with the peak of the summed RSS of its whole process tree (the main process and its
workers; ``benchmarks/_runners/proc_tree.py``) polled from /proc at ``--poll_hz``.  Outputs go to the
temporary directory and are removed after being counted; our dataset is first opened with
``IndexedDataset`` and its first and last instances are read back.

Options made equal: the bert processor, seq_length 128, 2 processes, seed 7, short_seq_prob 0.1,
dup_factor 1 (UER-py: ``--dynamic_masking``, which is what sets its dup_factor to 1; uer always masks in
the collator), docs_buffer_size 10,000 (UER-py's default is 100,000, which would hold the whole 10x corpus
in memory), Google's Chinese vocabulary, lower-casing.  What differs, by design of each: UER-py cuts the
corpus into one line range per process and buffers documents per process (its NSP random segment comes
from that process's buffer, and every process reseeds Python's RNG with the same seed); uer streams blocks
of documents to a pool in corpus order and writes one indexed, memory-mapped dataset.  The instance and
token counts are therefore close, not equal (both are printed).  Tokens: the ids of every instance,
[CLS]/[SEP] included, padding excluded.

    python benchmarks/preprocess_throughput.py --uer_py_path /work/uer-py      # the default run (~10 min)
    python benchmarks/preprocess_throughput.py --smoke                         # seconds: tiny corpus, uer only
"""

import argparse
import importlib.metadata
import os
import pickle
import platform
import shutil
import statistics
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(1, os.path.join(HERE, "_runners"))

from proc_tree import run_sampled  # noqa: E402

OURS, UER_PY = "uer", "UER-py"
MIB = float(1 << 20)
SMOKE_DOCUMENTS = 60


class BenchError(Exception):
    """A bad input or a failed run that leaves nothing to measure: one line, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    data = os.environ.get("UER_DATA_DIR", os.path.join(ROOT, "..", "shared", "data"))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus_path", default=os.path.join(data, "zh", "corpora", "CLUECorpusSmall_bert_sampled.txt"))
    p.add_argument("--vocab_path", default=os.path.join(data, "vocab", "google_zh_vocab.txt"))
    p.add_argument("--uer_py_path", default=os.environ.get("UER_PY_PATH", "/work/uer-py"),
                   help="A UER-py checkout ('' to leave it out).")
    p.add_argument("--sizes", default="1,10", help="Comma-separated corpus multiples.")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seq_length", type=int, default=128)
    p.add_argument("--processes_num", type=int, default=2)
    p.add_argument("--docs_buffer_size", type=int, default=10000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--poll_hz", type=float, default=20.0, help="Process-tree memory samples per second.")
    p.add_argument("--run_timeout", type=float, default=1800.0, help="Seconds before one run is killed.")
    p.add_argument("--work_dir", default=None, help="Where corpora and outputs go (default: a fresh temporary "
                                                    "directory, removed at the end).")
    p.add_argument("--smoke", action="store_true",
                   help=f"Seconds: the first {SMOKE_DOCUMENTS} documents of the corpus, sizes 1,2, one round, "
                        "docs_buffer_size 16, uer only.")
    return p


def check_args(args) -> None:
    for flag, path in (("--corpus_path", args.corpus_path), ("--vocab_path", args.vocab_path)):
        if not os.path.isfile(path):
            raise BenchError(f"{flag} {path} does not exist (set UER_DATA_DIR to the shared data directory)")
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        raise BenchError(f"--sizes {args.sizes!r}: expected comma-separated whole numbers, e.g. 1,10") from None
    if not sizes or min(sizes) < 1:
        raise BenchError(f"--sizes {args.sizes!r}: every size must be >= 1")
    args.size_list = sizes
    for flag in ("rounds", "processes_num", "docs_buffer_size"):
        if getattr(args, flag) < 1:
            raise BenchError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if args.poll_hz <= 0:
        raise BenchError(f"--poll_hz must be > 0, got {args.poll_hz}")


def uer_py_skip_reason(args) -> Optional[str]:
    if args.smoke:
        return "skipped: --smoke measures uer only"
    if not args.uer_py_path:
        return "skipped: no --uer_py_path"
    for need in ("preprocess.py", os.path.join("models", "special_tokens_map.json")):
        if not os.path.isfile(os.path.join(args.uer_py_path, need)):
            return f"skipped: {os.path.join(args.uer_py_path, need)} not found (not a UER-py checkout?)"
    return None


# -- corpora --------------------------------------------------------------------------------------
def read_source(args) -> bytes:
    with open(args.corpus_path, "rb") as f:
        data = f.read()
    if args.smoke:       # the first SMOKE_DOCUMENTS blank-line-separated documents
        documents = [d for d in data.replace(b"\r\n", b"\n").split(b"\n\n") if d.strip()][:SMOKE_DOCUMENTS]
        data = b"\n\n".join(documents)
    return data.rstrip(b"\n") + b"\n\n"        # one blank line after the last document: copies do not merge


def write_corpora(source: bytes, sizes: List[int], work: str) -> Dict[int, str]:
    paths = {}
    for n in sizes:
        paths[n] = os.path.join(work, f"corpus_{n}x.txt")
        with open(paths[n], "wb") as f:
            for _ in range(n):
                f.write(source)
    return paths


# -- one run of each system ---------------------------------------------------------------------------
def common_flags(args, corpus: str, out: str) -> List[str]:
    return ["--corpus_path", corpus, "--vocab_path", os.path.abspath(args.vocab_path), "--dataset_path", out,
            "--data_processor", "bert", "--seq_length", str(args.seq_length), "--processes_num",
            str(args.processes_num), "--docs_buffer_size", str(args.docs_buffer_size), "--seed", str(args.seed),
            "--dup_factor", "1", "--short_seq_prob", "0.1"]


def command(args, system: str, corpus: str, out: str) -> Tuple[List[str], str]:
    """(argv, working directory) of one run."""
    if system == OURS:
        return [sys.executable, os.path.join(ROOT, "preprocess.py")] + common_flags(args, corpus, out), ROOT
    # UER-py reads models/special_tokens_map.json from its working directory and writes its temporary
    # per-process files there: a directory of ours with a link to its models/.
    cwd = os.path.join(os.path.dirname(out), "uer_py_cwd")
    os.makedirs(cwd, exist_ok=True)
    link = os.path.join(cwd, "models")
    if not os.path.exists(link):
        os.symlink(os.path.join(os.path.abspath(args.uer_py_path), "models"), link)
    argv = [sys.executable, os.path.join(os.path.abspath(args.uer_py_path), "preprocess.py")]
    return argv + common_flags(args, corpus, out) + ["--dynamic_masking"], cwd


def count_ours(path: str) -> Tuple[int, int]:
    """Instances and tokens of our dataset, after opening it as pretrain.py does and reading back its
    first and last instances."""
    from uer.data.dataset import IndexedDataset
    dataset = IndexedDataset(path)
    if len(dataset) != dataset.meta["instances"] or len(dataset) == 0:
        raise BenchError(f"our dataset {path}: {len(dataset)} instances readable, meta.json says "
                         f"{dataset.meta['instances']}")
    for i in (0, len(dataset) - 1):
        if len(dataset[i]["src"]) == 0:
            raise BenchError(f"our dataset {path}: instance {i} is empty")
    return len(dataset), int(dataset.meta["tokens"])


class _PlainData(pickle.Unpickler):
    """UER-py's dataset.pt is a stream of pickled tuples of lists and ints: refuse anything else, so
    counting it never imports (or runs) code."""

    def find_class(self, module, name):
        raise BenchError(f"UER-py's dataset holds a {module}.{name} object, expected plain tuples")


def count_uer_py(path: str) -> Tuple[int, int]:
    instances = tokens = 0
    with open(path, "rb") as f:
        unpickler = _PlainData(f)
        while True:
            try:
                instance = unpickler.load()
            except EOFError:
                break
            (src, _pad), *_ = instance       # ((src, pad_num), is_random_next, seg_pos)
            instances += 1
            tokens += len(src)
    return instances, tokens


def run_once(args, system: str, corpus: str, work: str) -> dict:
    out = os.path.join(work, "out", "uer_dataset" if system == OURS else "uer_py_dataset.pt")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    argv, cwd = command(args, system, corpus, out)
    result = run_sampled(argv, cwd, args.run_timeout, 1.0 / args.poll_hz)
    try:
        if result["returncode"] != 0:
            tail = [line for line in result["output"].strip().splitlines() if line.strip()][-1:] or ["(no output)"]
            return {"error": f"exit {result['returncode']}: {tail[0][-200:]}"}
        instances, tokens = count_ours(out) if system == OURS else count_uer_py(out)
    finally:
        remove(out)
    return {"wall_s": result["wall_s"], "peak_mib": result["peak_bytes"] / MIB, "samples": result["samples"],
            "instances": instances, "tokens": tokens}


def remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)


# -- report ---------------------------------------------------------------------------------------------
def median_range(values: List[float], fmt: str) -> str:
    if not values:
        return "—"
    text = fmt.format(statistics.median(values))
    return text + (f" ({fmt.format(min(values))}-{fmt.format(max(values))})" if len(values) > 1 else "")


def ratio_cell(ours: List[dict], ref: List[dict]) -> str:
    """UER-py seconds / our seconds, round by round (each round's pair ran back to back)."""
    by_round = {r["round"]: r for r in ref}
    values = [by_round[r["round"]]["wall_s"] / r["wall_s"] for r in ours if r["round"] in by_round]
    return median_range(values, "{:.2f}") + "x" if values else "—"


def counts(runs: List[dict]) -> Tuple[str, str]:
    if not runs:
        return "—", "—"
    return f"{runs[-1]['instances']:,}", f"{runs[-1]['tokens']:,}"


def seconds_cell(runs: List[dict], failures: List[str], skipped: Optional[str]) -> str:
    if runs:
        return median_range([r["wall_s"] for r in runs], "{:.2f}")
    return skipped or ("failed: " + failures[0] if failures else "—")


def table(args, results: Dict[Tuple[str, int], List[dict]], failures: Dict[Tuple[str, int], List[str]],
          skipped: Optional[str]) -> str:
    lines = ["| size | uer s, median (range) | UER-py s, median (range) | speed vs UER-py | uer peak MiB "
             "| UER-py peak MiB | instances uer / UER-py | tokens uer / UER-py |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for n in args.size_list:
        ours, ref = results[(OURS, n)], results[(UER_PY, n)]
        (oi, ot), (ri, rt) = counts(ours), counts(ref)
        lines.append(f"| {n}x | {seconds_cell(ours, failures[(OURS, n)], None)} "
                     f"| {seconds_cell(ref, failures[(UER_PY, n)], skipped)} | {ratio_cell(ours, ref)} "
                     f"| {median_range([r['peak_mib'] for r in ours], '{:.0f}')} "
                     f"| {median_range([r['peak_mib'] for r in ref], '{:.0f}')} | {oi} / {ri} | {ot} / {rt} |")
    return "\n".join(lines)


def growth_line(args, results: Dict[Tuple[str, int], List[dict]]) -> str:
    """How the median peak grows from the smallest to the largest corpus, per system."""
    small, large = min(args.size_list), max(args.size_list)
    parts = []
    for system in (OURS, UER_PY):
        a, b = results[(system, small)], results[(system, large)]
        if a and b and small != large:
            pa, pb = (statistics.median(r["peak_mib"] for r in runs) for runs in (a, b))
            parts.append(f"{system} {pa:.0f} -> {pb:.0f} MiB ({pb - pa:+.0f} MiB, x{pb / pa:.2f})")
    return f"peak memory growth {small}x -> {large}x corpus: " + ("; ".join(parts) if parts else "—")


def environment(args) -> str:
    try:
        torch_version = importlib.metadata.version("torch")     # its metadata: importing torch takes a second
    except importlib.metadata.PackageNotFoundError:
        torch_version = "not installed"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"python {platform.python_version()}, torch {torch_version}, {os.cpu_count()} CPUs, "
            f"load average {load}")


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    args.command_line = " ".join(sys.argv[1:] if argv is None else argv)
    if args.smoke:
        args.sizes, args.rounds, args.docs_buffer_size = "1,2", 1, 16
    try:
        check_args(args)
        return measure(args)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def measure(args) -> int:
    skipped = uer_py_skip_reason(args)
    systems = [OURS] + ([] if skipped else [UER_PY])
    work = args.work_dir or tempfile.mkdtemp(prefix="preprocess_bench_")
    os.makedirs(work, exist_ok=True)
    load_before = environment(args)
    results: Dict[Tuple[str, int], List[dict]] = {(s, n): [] for s in (OURS, UER_PY) for n in args.size_list}
    failures: Dict[Tuple[str, int], List[str]] = {(s, n): [] for s in (OURS, UER_PY) for n in args.size_list}
    try:
        corpora = write_corpora(read_source(args), args.size_list, work)
        print(f"corpora in {work}: " + ", ".join(f"{n}x {os.path.getsize(p) / MIB:.1f} MiB"
                                                 for n, p in corpora.items()), flush=True)
        for r in range(args.rounds):
            order = systems if r % 2 == 0 else systems[::-1]
            for n in args.size_list:
                for system in order:
                    got = run_once(args, system, corpora[n], work)
                    if "error" in got:
                        failures[(system, n)].append(got["error"])
                        print(f"round {r + 1}/{args.rounds} {n}x {system}: FAILED {got['error']}", flush=True)
                        continue
                    got["round"] = r
                    results[(system, n)].append(got)
                    print(f"round {r + 1}/{args.rounds} {n}x {system}: {got['wall_s']:.2f} s, peak "
                          f"{got['peak_mib']:.0f} MiB ({got['samples']} samples), {got['instances']:,} instances",
                          flush=True)
        example, _ = command(args, OURS, corpora[args.size_list[0]], os.path.join(work, "out", "uer_dataset"))
        print()
        print(f"command: python benchmarks/preprocess_throughput.py {args.command_line}".rstrip())
        print("uer: " + " ".join(example[1:]))
        if not skipped:
            ref, _ = command(args, UER_PY, corpora[args.size_list[0]], os.path.join(work, "out", "uer_py_dataset.pt"))
            print("UER-py: " + " ".join(ref[1:]))
        print(f"environment: {load_before} before, {environment(args).rsplit(', ', 1)[-1]} after")
        print(f"wall-clock per run (imports included), {args.rounds} round(s) interleaved; peak = summed RSS of the "
              f"process tree at {args.poll_hz:g} Hz; UER-py {skipped or 'run'}")
        print()
        print(table(args, results, failures, skipped))
        print()
        print(growth_line(args, results))
        ok = all(results[(OURS, n)] for n in args.size_list)
        if ok:
            print("uer datasets load: every run's output opened with IndexedDataset, first and last instances read")
        return 0 if ok else 1
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

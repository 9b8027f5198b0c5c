"""benchmarks/pretrain_throughput.py: the table is produced and real tokens are counted right.

The smoke run needs the shared data (UER_DATA_DIR, the data_dir fixture); UER-py's row is added only when UER_PY_PATH
names a checkout (CI has none).  Nothing here is timed: speeds are only checked to be what the raw
records say."""

import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "benchmarks", "_runners"))

from throughput_report import RowRuns, median_range, ratios, tokens_per_s  # noqa: E402

UER_PY = os.environ.get("UER_PY_PATH")


def _result(rnd, tokens, seconds):
    return {"round": rnd, "tokens": tokens, "step_s": seconds, "lengths": [8] * len(tokens)}


def test_ratios_pair_each_round_with_the_same_round_of_the_reference():
    ref = RowRuns("ref", "ref", [_result(1, [100], [1.0]), _result(2, [100], [2.0])])
    row = RowRuns("row", "row", [_result(1, [300], [1.0]), _result(2, [100], [1.0])])
    assert tokens_per_s(row.rounds[0]) == 300
    # round 1: 300/100, round 2: 100/50 -> median 2.5, range 2.00-3.00 (not 400/75 of the medians)
    assert ratios(row, ref) == "2.50 (2.00-3.00)x"
    assert ratios(row, RowRuns("empty", "empty")) == "—"
    assert median_range([3.0, 1.0, 2.0]) == "2 (1-3)"


def test_a_missing_corpus_is_one_clear_error(tmp_path):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "pretrain_throughput.py"),
                           "--corpus_path", str(tmp_path / "none.txt"), "--uer_py_path", ""],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [f"error: --corpus_path {tmp_path / 'none.txt'}: no such file "
                                                "(set UER_DATA_DIR to the shared data directory or pass the path)"]


def _hand_counts(dataset_path, batch_size, seed, n):
    """Real tokens and padded length of the first n batches the Trainer takes, from the instances."""
    sys.path.insert(0, ROOT)
    from uer.data.dataset import IndexedDataset
    from uer.data.sampler import BatchSampler
    dataset = IndexedDataset(dataset_path)
    batches = BatchSampler(len(dataset), batch_size, seed).iter_epoch(0)
    counts, lengths = [], []
    for _ in range(n):
        _, _, indices = next(batches)
        sizes = [len(dataset[i]["src"]) for i in indices]
        counts.append(sum(sizes))
        lengths.append(8 * math.ceil(max(sizes) / 8))
    return counts, lengths


def test_smoke_run_prints_the_table_and_counts_real_tokens(tmp_path, data_dir):
    rows = "uer,hf" + (",uer_py" if UER_PY else "")
    raw = tmp_path / "raw.json"
    env = dict(os.environ, UER_DATA_DIR=data_dir)
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "pretrain_throughput.py"), "--smoke",
                           "--rows", rows, "--uer_py_path", UER_PY or "", "--work_dir", str(tmp_path / "work"),
                           "--json_out", str(raw)], capture_output=True, text=True, timeout=900, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    records = json.loads(raw.read_text())
    counts, lengths = _hand_counts(str(tmp_path / "work" / "uer_dataset"), 4, 7, 3)   # smoke: batch 4, 1 + 2 steps
    for key in ("uer", "hf"):
        (run,) = records[key]["rounds"]
        assert run["all_tokens"] == counts, key      # the collator's count = the instances' lengths, padding out
        assert run["lengths"] == lengths[1:], key    # the timed steps' padded lengths
        assert run["tokens"] == counts[1:] and len(run["step_s"]) == 2
        assert all(math.isfinite(x) for x in run["losses"]) and len(run["losses"]) == 3
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| system | real tokens/s")
    for key, label in (("uer", "uer, fp32"), ("hf", "transformers loop")):
        (line,) = [t for t in table if t.startswith(f"| {label}")]
        shown = float(line.split("|")[2].split()[0])
        (run,) = records[key]["rounds"]
        assert shown == pytest.approx(sum(run["tokens"]) / sum(run["step_s"]), abs=0.51)
    if UER_PY:
        (run,) = records["uer_py"]["rounds"]
        assert run["seg_vs_src_mismatches"] == []     # seg > 0 and src != [PAD] agree on every batch
        assert run["lengths"] == [64, 64]             # UER-py pads every batch to seq_length
        assert all(0 < t <= 4 * 64 for t in run["all_tokens"])
        (line,) = [t for t in table if t.startswith("| UER-py")]
        assert "1.00x" in line

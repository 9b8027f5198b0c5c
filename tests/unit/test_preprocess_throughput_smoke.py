"""benchmarks/preprocess_throughput.py --smoke runs our preprocess.py on a tiny corpus at two sizes and
prints the table with timings, peak process-tree memory, counts, the growth line, and that every output
dataset loaded."""

import importlib.util
import os
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_bench():
    path = os.path.join(ROOT, "benchmarks", "preprocess_throughput.py")
    spec = importlib.util.spec_from_file_location("preprocess_throughput", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_table(tiny_corpus, tmp_path, capsys):
    bench = load_bench()
    code = bench.main(["--smoke", "--corpus_path", str(tiny_corpus / "corpus.txt"),
                       "--vocab_path", str(tiny_corpus / "vocab.txt"), "--work_dir", str(tmp_path / "work")])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = {cells[0].strip(): [c.strip() for c in cells] for cells in
            (line.split("|")[1:-1] for line in out.splitlines() if re.match(r"\| \d+x \|", line))}
    assert sorted(rows) == ["1x", "2x"]
    instances = {}
    for size, cells in rows.items():
        seconds, peak = float(cells[1]), float(cells[4])
        assert seconds > 0 and peak > 10                  # a Python process tree is tens of MiB
        assert cells[2].startswith("skipped") and cells[3] == "—"
        ours, ref = cells[6].split(" / ")
        instances[size] = int(ours.replace(",", ""))
        assert ref == "—" and int(cells[7].split(" / ")[0].replace(",", "")) > instances[size]
    assert instances["2x"] > instances["1x"] > 0
    assert re.search(r"peak memory growth 1x -> 2x corpus: uer \d+ -> \d+ MiB", out)
    assert "uer datasets load" in out and "load average" in out and "torch " in out
    assert not os.listdir(tmp_path / "work" / "out")         # outputs removed once counted


def test_bad_sizes_are_one_line(capsys):
    assert load_bench().main(["--sizes", "1,x", "--uer_py_path", ""]) == 2
    assert "error: --sizes '1,x'" in capsys.readouterr().err


def test_tree_sampler_counts_children():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks", "_runners"))
    from proc_tree import run_sampled
    # A parent holding ~40 MiB whose child holds another ~40 MiB (touched, so resident) for half a second.
    script = ("import os, time\nb = bytearray(40 << 20)\nif os.fork() == 0:\n    c = bytearray(40 << 20)\n"
              "    time.sleep(0.6)\n    os._exit(0)\nos.wait()\n")
    start = time.perf_counter()
    result = run_sampled([sys.executable, "-c", script], ROOT, timeout=60, interval=0.02)
    assert result["returncode"] == 0 and time.perf_counter() - start >= 0.6
    assert result["peak_bytes"] > 80 << 20          # both processes' buffers at once

"""benchmarks/gpu_suite.py --smoke runs every row's code path on the CPU (tiny shapes, 1-2 steps)
and writes a table with every row, finite numbers, the ceilings and the environment header."""

import importlib.util
import math
import os
import re

import pytest

pytest.importorskip("transformers")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = ["BERT-base MLM, seq 128", "BERT-base MLM, seq 512", "GPT-2 124M, seq 1024", "LLaMA-style 1.1B, seq 2048"]


def load_suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", os.path.join(ROOT, "benchmarks", "gpu_suite.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_table_has_every_row_with_finite_numbers(tmp_path):
    suite = load_suite()
    assert suite.main(["--smoke", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "gpu_suite.md").read_text()
    for key in ("device: CPU", "torch ", "commit ", "date "):
        assert key in text
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    table = {(cells[0].strip(), cells[1].strip()): cells for cells in rows[1:]}
    for model in MODELS:
        for system in ("uer", "transformers (SDPA)"):
            cells = table[(model, system)]
            tokens, tflops, peak_mib = (float(cells[i].replace(",", "")) for i in (3, 4, 6))
            assert all(math.isfinite(v) for v in (tokens, tflops, peak_mib)) and tokens > 0 and peak_mib > 0
            assert re.fullmatch(r"\d+\.\d\dx", cells[7].strip())
            assert int(cells[8]) >= 1
    assert ("all", "uer + compile") in table          # said to be left out, not silently missing
    assert re.search(r"bf16 matmul 256\^3: [\d.]+ TFLOP/s", text)
    assert re.search(r"device copy, 1 MiB: [\d,]+ GB/s", text)


def test_full_shapes_are_the_issue_rows():
    suite = load_suite()
    shapes = {s.name: s for s in suite.full_shapes()}
    assert list(shapes) == MODELS
    assert [shapes[m].seq for m in MODELS] == [128, 512, 1024, 2048]
    llama = suite.our_config(shapes["LLaMA-style 1.1B, seq 2048"])
    assert (llama.hidden_size, llama.layers_num, llama.kv_heads_num, llama.feedforward_size) == (2048, 22, 4, 5632)


def test_no_gpu_is_a_clear_exit(capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    assert load_suite().main(["--out", "/nonexistent-never-written"]) == 2
    assert "--smoke" in capsys.readouterr().err

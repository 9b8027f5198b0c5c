"""benchmarks/finetune_throughput.py --smoke runs our run_classifier / run_classifier_infer and the plain
transformers loop as subprocesses on a few book_review rows and prints the markdown table with both
systems' throughput, dev accuracy and the ratio row, plus the command, load average and versions."""

import importlib.util
import math
import os
import re

import pytest

pytest.importorskip("transformers")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.environ.get("UER_DATA_DIR")
pytestmark = pytest.mark.skipif(not DATA or not os.path.isdir(os.path.join(DATA, "zh", "book_review")),
                                reason="needs $UER_DATA_DIR/zh/book_review and the vocabulary")


def load_benchmark():
    spec = importlib.util.spec_from_file_location("finetune_throughput",
                                                  os.path.join(ROOT, "benchmarks", "finetune_throughput.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_prints_the_table_for_ours_and_transformers(capsys, tmp_path):
    bench = load_benchmark()
    results = bench.main(["--smoke", "--data_dir", DATA, "--work_dir", str(tmp_path)])
    text = capsys.readouterr().out
    assert set(results) == {"ours", "transformers"}
    for r in results.values():
        assert len(r.train_ex_s) == len(r.infer_ex_s) == 1
        assert all(math.isfinite(v) and v > 0 for v in r.train_ex_s + r.infer_ex_s)
        assert 0.0 <= r.dev_accuracy[0] <= 1.0
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "ours" in rows and "transformers" in rows and "UER-py" not in rows
    assert re.search(r"\| ours / transformers \| \d+\.\d\dx \| \d+\.\d\dx \|", text)
    for key in ("command: `python benchmarks/finetune_throughput.py --smoke", "load average before", "torch ",
                "transformers ", "48 train / 16 dev / 16 inference"):
        assert key in text
    # each system's own logs are kept in the work folder; its predictions cover every inference row
    assert (tmp_path / "ours.round1.finetune.log").is_file()
    assert len((tmp_path / "ours" / "predictions.tsv").read_text().splitlines()) == 1 + 16


def test_bad_flags_are_one_clear_error(capsys):
    bench = load_benchmark()
    with pytest.raises(SystemExit):
        bench.main(["--systems", "ours,nope"])
    assert "unknown ['nope']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--rows", "8", "--batch_size", "32"])
    assert "at least 2 optimizer steps" in capsys.readouterr().err

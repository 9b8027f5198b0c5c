import json

import pytest

from uer.errors import DataError
from uer.tools.plot_metrics import main, read_metrics

pytest.importorskip("matplotlib")


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_plots_two_runs_to_png(tmp_path):
    a = write(tmp_path / "a.metrics.jsonl", [{"step": s, "loss": 5 - s * 0.1, "mlm_acc": s / 100} for s in range(1, 30)])
    b = write(tmp_path / "b.metrics.jsonl", [{"step": s, "loss": 6 - s * 0.1, "rtd_acc": 0.5 + s / 100} for s in range(1, 30)])
    out = str(tmp_path / "curves.png")
    main(["--metrics", a, b, "--labels", "MLM", "ELECTRA", "--keys", "loss", "mlm_acc", "rtd_acc", "--output", out])
    data = open(out, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_bad_metrics_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_metrics(str(tmp_path / "none.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"step": 1}\nnot json\n')
    with pytest.raises(DataError, match="line 2"):
        read_metrics(str(bad))

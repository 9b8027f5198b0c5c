"""Draw training curves from one or more metrics JSONL files (``<output_model_path>.metrics.jsonl``).

    python scripts/plot_metrics.py --metrics runs/mlm.bin.metrics.jsonl runs/electra.bin.metrics.jsonl \
        --labels MLM ELECTRA --keys loss mlm_acc rtd_acc --output docs/curves.png

One panel per key; each run is one line in every panel that has that key.  matplotlib is an
optional extra (``pip install uer[plot]``).
"""

import argparse
import json
import os
from typing import Dict, List, Optional

from uer.cli.common import cli_entry
from uer.errors import DataError, UerError


def read_metrics(path: str) -> List[Dict]:
    if not os.path.isfile(path):
        raise DataError(f"metrics file {path} does not exist (pretrain.py writes <output_model_path>.metrics.jsonl)")
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise DataError(f"{path} line {number}: not a JSON object; is this a metrics .jsonl file?")
    if not records:
        raise DataError(f"metrics file {path} is empty")
    return records


def plot(runs: Dict[str, List[Dict]], keys: List[str], output: str, x_key: str = "step") -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UerError("plotting needs matplotlib: pip install uer[plot]")
    present = [k for k in keys if any(k in r for records in runs.values() for r in records)]
    if not present:
        raise DataError(f"none of the keys {keys} occur in the metrics files")
    fig, axes = plt.subplots(1, len(present), figsize=(4.5 * len(present), 3.4), squeeze=False)
    for ax, key in zip(axes[0], present):
        for label, records in runs.items():
            points = [(r[x_key], r[key]) for r in records if key in r and x_key in r]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, label=label, linewidth=1.4)
        ax.set_title(key)
        ax.set_xlabel(x_key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fig.savefig(output, dpi=120)
    plt.close(fig)


@cli_entry
def main(argv: Optional[List[str]] = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--metrics", nargs="+", required=True, help="metrics .jsonl files")
    p.add_argument("--labels", nargs="+", default=None, help="one label per file (default: file names)")
    p.add_argument("--keys", nargs="+", default=["loss"], help="metrics to draw, one panel each")
    p.add_argument("--x_key", default="step")
    p.add_argument("--output", required=True, help="PNG file to write")
    args = p.parse_args(argv)
    labels = args.labels or [os.path.basename(m).replace(".metrics.jsonl", "") for m in args.metrics]
    if len(labels) != len(args.metrics):
        raise UerError(f"--labels gives {len(labels)} names for {len(args.metrics)} --metrics files")
    plot({label: read_metrics(path) for label, path in zip(labels, args.metrics)}, args.keys, args.output, args.x_key)
    print(f"wrote {args.output}")
    return args.output

"""The summary of benchmarks/pretrain_throughput.py: per-round figures, medians, ratios, the table."""

import statistics
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional


@dataclass
class RowRuns:
    key: str
    label: str
    rounds: List[dict] = field(default_factory=list)     # one runner result per round that worked
    failures: List[str] = field(default_factory=list)
    skipped: Optional[str] = None


def tokens_per_s(result: dict) -> float:
    return sum(result["tokens"]) / sum(result["step_s"])


def tflops(result: dict, flops: Callable[[int, int], float]) -> float:
    """Model TFLOP/s by BatchFlops' convention, from each timed batch's real tokens and padded length."""
    return sum(flops(t, n) for t, n in zip(result["tokens"], result["lengths"])) / sum(result["step_s"]) / 1e12


def median_range(values: List[float], fmt: str = "{:.0f}") -> str:
    if not values:
        return "—"
    text = fmt.format(statistics.median(values))
    if len(values) > 1:
        text += f" ({fmt.format(min(values))}-{fmt.format(max(values))})"
    return text


def ratios(row: RowRuns, ref: Optional[RowRuns]) -> str:
    """Row / reference tokens/s, round by round (each round's pair ran back to back): median (range)."""
    if ref is None or not ref.rounds or not row.rounds:
        return "—"
    by_round = {r["round"]: tokens_per_s(r) for r in ref.rounds}
    values = [tokens_per_s(r) / by_round[r["round"]] for r in row.rounds if r["round"] in by_round]
    return median_range(values, "{:.2f}") + "x" if values else "—"


def loss_trend(result: dict) -> str:
    """Mean loss of the run's first two steps -> its last two (warm-up steps included)."""
    losses = result["losses"]
    k = max(1, min(2, len(losses) // 2))
    start, end = sum(losses[:k]) / k, sum(losses[-k:]) / k
    return f"{start:.2f} -> {end:.2f}" + ("" if end < start else " (not falling)")


def table(rows: List[RowRuns], flops: Callable[[int, int], float], uer_py_key: str, hf_key: str) -> str:
    found: Dict[str, RowRuns] = {r.key: r for r in rows}
    ref_py, ref_hf = found.get(uer_py_key), found.get(hf_key)
    lines = ["| system | real tokens/s, median (range) | TFLOP/s | peak RSS MiB | vs UER-py | vs hf gathered loop "
             "| loss, round 1 | note |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for row in rows:
        if row.skipped or not row.rounds:
            note = row.skipped or "; ".join(row.failures) or "no result"
            lines.append(f"| {row.label} | — | — | — | — | — | — | {note} |")
            continue
        speeds = [tokens_per_s(r) for r in row.rounds]
        rates = [tflops(r, flops) for r in row.rounds]
        rss = max(r["peak_rss_mib"] for r in row.rounds)
        note = "; ".join(row.failures)
        if len(row.rounds) < max(len(r.rounds) for r in rows):
            note = (note + "; " if note else "") + f"{len(row.rounds)} round(s) only"
        lines.append(f"| {row.label} | {median_range(speeds)} | {median_range(rates, '{:.3f}')} | {rss:.0f} | "
                     f"{ratios(row, ref_py)} | {ratios(row, ref_hf)} | {loss_trend(row.rounds[0])} | {note} |")
    return "\n".join(lines)

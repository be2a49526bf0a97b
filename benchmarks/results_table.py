"""Markdown tables for the README from the JSON files of several runs of one family.

    python benchmarks/results_table.py benchmarks/results/redis-A.json benchmarks/results/redis-B.json

One row per case; each metric shows run 1 / run 2 / …; then the ratios of our cases to the best peer of
the same run, and the verdict of each target per run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

METRICS = [
    ("enqueue_per_s", "enqueue/s", "{:,.0f}"),
    ("add_alone_per_s", "add alone/s", "{:,.0f}"),
    ("process_per_s", "processed/s", "{:,.0f}"),
    ("pickup_p50_ms", "pick-up p50 ms", "{:.2f}"),
    ("pickup_p99_ms", "pick-up p99 ms", "{:.2f}"),
    ("server_cpu_ms_per_task", "server CPU s/1k", "{:.3f}"),
    ("wal_bytes_per_task", "WAL B/task", "{:,.0f}"),
]
HIGHER = {
    "enqueue_per_s": True,
    "add_alone_per_s": True,
    "process_per_s": True,
    "pickup_p50_ms": False,
    "pickup_p99_ms": False,
    "server_cpu_ms_per_task": False,
    "wal_bytes_per_task": False,
}


def label(r: dict[str, Any]) -> str:
    text = f"{r['system']} [{r['variant']}]"
    return ("**" + text + "**") if r["ours"] else text


def cell(runs: list[dict[str, Any] | None], metric: str, fmt: str) -> str:
    values = []
    for r in runs:
        v = None if r is None or r.get("error") else r.get(metric)
        values.append("-" if v is None else fmt.format(v))
    return " / ".join(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    runs = [json.loads(f.read_text()) for f in args.files]
    keys: list[tuple[str, str]] = []
    for run in runs:
        for r in run["results"]:
            key = (r["system"], r["variant"])
            if key not in keys:
                keys.append(key)

    # Only the metrics some run has (older files have no "add alone"; peers never have it).
    metrics = [m for m in METRICS if any(r.get(m[0]) is not None for run in runs for r in run["results"])]

    def find(run: dict[str, Any], key: tuple[str, str]) -> dict[str, Any] | None:
        return next((r for r in run["results"] if (r["system"], r["variant"]) == key), None)

    print("| case | n | " + " | ".join(title for _, title, _ in metrics) + " |")
    print("|---|---|" + "---|" * len(metrics))
    for key in keys:
        rows = [find(run, key) for run in runs]
        first = next(r for r in rows if r is not None)
        sizes = sorted({r["n"] for r in rows if r is not None})
        n = " / ".join(f"{r['n']:,}" if r else "-" for r in rows) if len(sizes) > 1 else f"{sizes[0]:,}"
        cells = [cell(rows, m, fmt) for m, _, fmt in metrics]
        print(f"| {label(first)} | {n} | " + " | ".join(cells) + " |")
    print()
    print("Ours / best peer of the same run (throughput: > 1 wins; latency: < 1 wins):")
    print()
    print("| our case | " + " | ".join(title for _, title, _ in metrics) + " |")
    print("|---|" + "---|" * len(metrics))
    for key in keys:
        rows = [find(run, key) for run in runs]
        first = next(r for r in rows if r is not None)
        if not first["ours"]:
            continue
        cells = []
        for metric, _, _ in metrics:
            ratios = []
            for run, mine in zip(runs, rows, strict=True):
                peers = [p[metric] for p in run["results"] if not p["ours"] and p.get(metric)]
                value = None if mine is None else mine.get(metric)
                if not peers or value is None:
                    ratios.append("-")
                    continue
                best = max(peers) if HIGHER[metric] else min(peers)
                ratios.append(f"{value / best:.2f}x")
            cells.append(" / ".join(ratios))
        print(f"| {label(first)} | " + " | ".join(cells) + " |")
    print()
    print("Targets (ours at defaults; ours at its best case), per run:")
    print()
    for i, target in enumerate(runs[0]["targets"]):
        verdicts = []
        for run in runs:
            t = run["targets"][i]
            parts = []
            for o in t["ours"]:
                word = {True: "pass", False: "MISS", None: "n/a"}[o["pass"]]
                ratio = f" {o['ratio']:.2f}x" if o.get("ratio") is not None else ""
                parts.append(f"{word}{ratio}")
            verdicts.append(" · ".join(parts))
        against = ""
        if target["kind"] == "ratio":
            against = " (vs " + " / ".join(str(run["targets"][i]["against"]) for run in runs) + ")"
        print(f"- {target['target']}{against}: " + " / ".join(verdicts))


if __name__ == "__main__":
    main()

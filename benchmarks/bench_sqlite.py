"""sheppy-sqlite vs huey's SqliteHuey: enqueue one by one, process with one worker process, pick-up.

    python benchmarks/bench_sqlite.py [--n 10000] [--samples 50] [--tuned 50] [--only huey] [--profile]

Every case gets a fresh database file in one temporary directory (same disk for everyone). Targets
(issue 5): ours ≥ the better huey setting for enqueue and for processing; cross-process pick-up
p50 ≤ 20 ms.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
from pathlib import Path

from _harness import (
    Case,
    Target,
    common_arguments,
    evaluate,
    load_driver,
    pair_ratios,
    print_pairs,
    print_report,
    run_all,
    selected,
    versions,
    write_json,
)

TITLE = "sheppy-sqlite vs huey (SqliteHuey), one worker process, no-op tasks"


def cases(directory: Path, tuned: int) -> list[Case]:
    def url(name: str) -> str:
        return f"sqlite:///{directory / name}"

    return [
        Case(
            "sheppy-sqlite",
            "defaults",
            "sys_sheppy_core",
            {"url": url("ours-defaults.db"), "queue": "bench"},
            ours=True,
            enqueue="one",
        ),
        Case(
            "sheppy-sqlite",
            f"max_concurrent_tasks={tuned}",
            "sys_sheppy_core",
            {"url": url("ours-tuned.db"), "queue": "bench", "max_concurrent_tasks": tuned},
            ours=True,
            enqueue="one",
        ),
        Case(
            "sheppy-sqlite",
            "synchronous=full",
            "sys_sheppy_core",
            {"url": url("ours-sync-full.db") + "?synchronous=full", "queue": "bench"},
            ours=True,
            enqueue="one",
        ),
        Case(
            "sheppy-sqlite",
            "synchronous=off",
            "sys_sheppy_core",
            {"url": url("ours-sync-off.db") + "?synchronous=off", "queue": "bench"},
            ours=True,
            enqueue="one",
        ),
        Case(
            "sheppy-sqlite",
            "fast_path=false",
            "sys_sheppy_core",
            {"url": url("ours-no-fast-path.db") + "?fast_path=false", "queue": "bench"},
            ours=True,
            enqueue="one",
        ),
        Case(
            "huey",
            "defaults (synchronous=FULL)",
            "sys_huey",
            {"path": str(directory / "huey-defaults.db")},
            enqueue="one",
            peer_group="huey",
        ),
        Case(
            "huey",
            "fsync=False (synchronous=OFF), delay=0.01",
            "sys_huey",
            {"path": str(directory / "huey-best.db"), "fsync": False, "consumer": {"initial_delay": 0.01}},
            enqueue="one",
            peer_group="huey",
        ),
    ]


PAIRS = [
    (
        "same durability (synchronous=FULL)",
        "sheppy-sqlite [synchronous=full]",
        "huey [defaults (synchronous=FULL)]",
    ),
    (
        "same durability (synchronous=OFF)",
        "sheppy-sqlite [synchronous=off]",
        "huey [fsync=False (synchronous=OFF), delay=0.01]",
    ),
    ("defaults vs defaults", "sheppy-sqlite [defaults]", "huey [defaults (synchronous=FULL)]"),
]

TARGETS = [
    Target("enqueue_per_s", "ratio", 1.0, "huey", "enqueue one by one: ours >= huey (its better setting)"),
    Target("process_per_s", "ratio", 1.0, "huey", "processing, one worker process: ours >= huey"),
    Target("pickup_p50_ms", "max", 20.0, "", "cross-process pick-up p50 <= 20 ms (issue 5)"),
]


async def main() -> None:
    parser = common_arguments(__doc__ or "", samples=50, gap_ms=50.0)
    parser.add_argument("--tuned", type=int, default=50, help="max_concurrent_tasks of our tuned case")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="sheppy-bench-sqlite-"))
    try:
        print(f"{TITLE}\n  n={args.n}, latency samples={args.samples}, files in {directory}")
        results = await run_all(TITLE, selected(cases(directory, args.tuned), args.only), args, load_driver)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    verdicts = evaluate(results, TARGETS)
    pairs = pair_ratios(results, PAIRS)
    print_report(TITLE, results, verdicts)
    print_pairs(pairs)
    path = write_json(
        "sqlite",
        args,
        results,
        verdicts,
        {
            "pairs": pairs,
            "versions": versions(["sheppy-core", "sheppy-sqlite", "aiosqlite", "huey"]),
            "sqlite_version": sqlite3.sqlite_version,
        },
    )
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    asyncio.run(main())

"""What a task record costs to build, encode, store and read back: the full JSON form against the compact
one (issue #19, levers 1 and 5), measured side by side in one run.

For ``--tasks`` no-op tasks (10,000), each step timed alone, best of ``--rounds`` (7) with the forms
interleaved so a busy neighbour hits both alike:

- ``build``: calling the ``@task`` function (argument validation included; the same for both forms);
- ``record``: task -> record dict: ``Task.model_dump(mode="json")`` (full, what was stored before) and
  ``task_record`` (compact, what ``Queue.add`` stores now);
- ``encode``: record -> JSON text (``record_to_json``, what the SQL backends store); bytes per record;
- ``build+record+encode``: what ``Queue.add([...])`` of fresh tasks costs before the store's own I/O
  (target: < 30 ms for 10,000);
- ``read``: JSON text -> ``Task`` (``record_from_json`` + ``Task.model_validate``, what a worker does
  per claimed task);
- ``sqlite add``: the prebuilt tasks' records built and appended to a fresh SQLite file
  (``synchronous=normal``) in one call, as ``Queue.add`` does; and the file's size after a checkpoint.

    .venv/bin/python benchmarks/bench_records.py [--tasks 10000] [--rounds 7] [--json PATH]

Times are wall-clock; on a busy machine compare the two columns of one run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sheppy_core import Queue, Task, task
from sheppy_core._task_record import task_record
from sheppy_core.backend import record_from_json, record_to_json

TARGET_MS = 30.0


@task
async def noop(i: int) -> None:
    return None


def _full(t: Task[Any]) -> dict[str, Any]:
    return t.model_dump(mode="json")


FORMS: dict[str, Callable[[Task[Any]], dict[str, Any]]] = {"full": _full, "compact": task_record}


def _best_ms(step: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - started)
    return best * 1000


async def _sqlite_add(tasks: list[Task[Any]], form: str, directory: Path, round_no: int) -> tuple[float, int]:
    """Seconds for building the records of ``tasks`` in ``form`` and appending them to a fresh file in
    one call (what ``Queue.add`` does), and the file's bytes after it."""
    path = directory / f"{form}-{round_no}.db"
    queue = Queue(f"sqlite:///{path}")
    await queue.size()  # connect and create the schema outside the clock
    backend, dump = queue.backend, FORMS[form]
    started = time.perf_counter()
    await backend.append(queue.name, [dump(t) for t in tasks])
    elapsed = time.perf_counter() - started
    await backend.disconnect()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return elapsed, path.stat().st_size


def measure(n: int, rounds: int) -> dict[str, Any]:
    tasks = [noop(i) for i in range(n)]
    out: dict[str, Any] = {"tasks": n, "rounds": rounds, "forms": {}}
    build_ms = _best_ms(lambda: [noop(i) for i in range(n)], rounds)
    out["build_ms"] = build_ms
    for form, dump in FORMS.items():
        records = [dump(t) for t in tasks]
        texts = [record_to_json(r) for r in records]
        sample = zip(texts[:100], tasks, strict=False)
        assert all(Task.model_validate(record_from_json(x)) == t for x, t in sample), form
        out["forms"][form] = {
            "record_ms": _best_ms(lambda dump=dump: [dump(t) for t in tasks], rounds),
            "encode_ms": _best_ms(lambda records=records: [record_to_json(r) for r in records], rounds),
            "read_ms": _best_ms(lambda texts=texts: [Task.model_validate(record_from_json(x)) for x in texts],
                                rounds),
            "bytes_per_record": sum(len(x.encode()) for x in texts) / n,
        }
    with tempfile.TemporaryDirectory() as tmp:
        for form in FORMS:
            runs = [asyncio.run(_sqlite_add(tasks, form, Path(tmp), r)) for r in range(max(2, rounds // 2))]
            out["forms"][form]["sqlite_add_ms"] = min(s for s, _ in runs) * 1000
            out["forms"][form]["sqlite_file_bytes"] = min(b for _, b in runs)
    for form in FORMS:
        f = out["forms"][form]
        f["add_cpu_ms"] = build_ms + f["record_ms"] + f["encode_ms"]
        f["record_and_encode_ms"] = f["record_ms"] + f["encode_ms"]
    return out


def report(result: dict[str, Any]) -> str:
    full, compact = result["forms"]["full"], result["forms"]["compact"]
    rows = [
        ("record (task -> dict)", "record_ms", "ms"),
        ("encode (dict -> JSON)", "encode_ms", "ms"),
        ("record + encode", "record_and_encode_ms", "ms"),
        ("build + record + encode", "add_cpu_ms", "ms"),
        ("read (JSON -> Task)", "read_ms", "ms"),
        ("bytes per record", "bytes_per_record", "B"),
        ("SQLite add, one batch", "sqlite_add_ms", "ms"),
        ("SQLite file after checkpoint", "sqlite_file_bytes", "B"),
    ]
    lines = [
        f"{result['tasks']:,} no-op tasks, best of {result['rounds']} rounds; building them: "
        f"{result['build_ms']:.1f} ms (both forms)",
        f"{'':32} {'full':>12} {'compact':>12} {'compact/full':>13}",
    ]
    for label, key, unit in rows:
        a, b = full[key], compact[key]
        lines.append(f"{label:32} {a:>10,.1f} {unit:2} {b:>9,.1f} {unit:2} {b / a:>12.2f}x")
    verdict = "PASS" if compact["record_and_encode_ms"] < TARGET_MS else "MISS"
    lines.append(
        f"Queue.add's own record building and encoding of {result['tasks']:,} tasks < {TARGET_MS:.0f} ms: "
        f"{verdict} ({compact['record_and_encode_ms']:.1f} ms; "
        f"full form {full['record_and_encode_ms']:.1f} ms)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    result = measure(args.tasks, args.rounds)
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

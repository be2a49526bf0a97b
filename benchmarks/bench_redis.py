"""sheppy-redis vs sheppy 0.0.7 (the seed), taskiq-redis and saq on one Redis, plus its own ceiling.

    python benchmarks/bench_redis.py [--n 10000] [--samples 200] [--url redis://127.0.0.1:6379/15]
                                     [--tuned 50] [--only saq] [--profile] [--no-ceiling]

Everything runs in one Redis database (15 by default), flushed (FLUSHDB of that database only) before
and after every case; the script refuses database 0. Targets (issue 6): batch enqueue and processing
≥ 2x sheppy 0.0.7 (its better setting) and ahead of every peer; idle pick-up p50 ≤ 1.5 ms.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from _harness import (
    Case,
    Target,
    common_arguments,
    evaluate,
    load_driver,
    pair_ratios,
    print_pairs,
    print_report,
    redis_server_cpu,
    run_all,
    selected,
    versions,
    write_json,
)

TITLE = "sheppy-redis vs sheppy 0.0.7 vs taskiq-redis vs saq, one worker process, no-op tasks"


def cases(url: str, tuned: int, peer_tuned: int) -> list[Case]:
    queue = "bench"
    return [
        Case("sheppy-redis", "defaults", "sys_sheppy_core", {"url": url, "queue": queue}, ours=True),
        Case(
            "sheppy-redis",
            f"max_concurrent_tasks={tuned}",
            "sys_sheppy_core",
            {"url": url, "queue": queue, "max_concurrent_tasks": tuned},
            ours=True,
        ),
        # What ``sheppy work --processes 2`` runs: two worker processes at their defaults, one store.
        Case("sheppy-redis", "processes=2", "sys_sheppy_core", {"url": url, "queue": queue}, ours=True,
             processes=2),
        Case(
            "sheppy-0.0.7",
            "defaults",
            "sys_sheppy007",
            {"url": url, "queue": queue},
            peer_group="sheppy-0.0.7",
        ),
        Case(
            "sheppy-0.0.7",
            f"max_concurrent_tasks={peer_tuned}",
            "sys_sheppy007",
            {"url": url, "queue": queue, "max_concurrent_tasks": peer_tuned},
            peer_group="sheppy-0.0.7",
        ),
        Case(
            "taskiq-redis",
            "ListQueueBroker, defaults",
            "sys_taskiq",
            {"url": url, "queue": queue, "broker": "list"},
            peer_group="taskiq",
        ),
        Case(
            "taskiq-redis",
            f"ListQueueBroker, max_prefetch={peer_tuned}",
            "sys_taskiq",
            {"url": url, "queue": queue, "broker": "list", "receiver": {"max_prefetch": peer_tuned}},
            peer_group="taskiq",
        ),
        Case(
            "taskiq-redis",
            "RedisStreamBroker, defaults",
            "sys_taskiq",
            {"url": url, "queue": queue, "broker": "stream"},
            peer_group="taskiq",
        ),
        Case("saq", "defaults (concurrency=10)", "sys_saq", {"url": url, "queue": queue}, peer_group="saq"),
        Case(
            "saq",
            f"concurrency={peer_tuned}",
            "sys_saq",
            {"url": url, "queue": queue, "worker": {"concurrency": peer_tuned}},
            peer_group="saq",
        ),
    ]


TARGETS = [
    Target("enqueue_per_s", "ratio", 2.0, "sheppy-0.0.7", "batch enqueue: ours >= 2x sheppy 0.0.7"),
    Target(
        "process_per_s",
        "ratio",
        2.0,
        "sheppy-0.0.7",
        "processing, one worker process: ours >= 2x sheppy 0.0.7",
    ),
    Target("enqueue_per_s", "ratio", 1.0, "", "batch enqueue: ours ahead of every peer"),
    Target("process_per_s", "ratio", 1.0, "", "processing: ours ahead of every peer"),
    Target("pickup_p50_ms", "max", 1.5, "", "idle pick-up p50 <= 1.5 ms"),
    Target("server_cpu_ms_per_task", "ratio", 1.0, "", "server CPU per processed task: ours <= every peer's"),
]

PAIRS = [
    ("two worker processes (target >= 1.5x)", "sheppy-redis [processes=2]", "sheppy-redis [defaults]"),
]


def ceiling(url: str, requests: int = 20_000) -> dict[str, Any]:
    """``redis-benchmark`` on the same server and database: what one client can get, no pipelining."""
    parts = urlsplit(url)
    db = (parts.path or "/0").lstrip("/") or "0"
    command = [
        "redis-benchmark",
        "-q",
        "-n",
        str(requests),
        "-t",
        "set,lpush,rpop",
        "-P",
        "1",
        "-h",
        parts.hostname or "127.0.0.1",
        "-p",
        str(parts.port or 6379),
        "--dbnum",
        db,
    ]
    try:
        output = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return {"command": " ".join(command), "error": str(exc)}
    # -q output redraws a progress line with carriage returns; only the final lines say "requests per second".
    lines = [line.strip() for line in output.splitlines() if "requests per second" in line]
    rates = {
        m.group(1): float(m.group(2))
        for line in lines
        if (m := re.match(r"(\w+): ([\d.]+) requests per second", line))
    }
    return {"command": " ".join(command), "output": lines, "requests_per_s": rates}


async def flush(url: str) -> str:
    client = aioredis.Redis.from_url(url)
    try:
        await client.flushdb()
        info = await client.info("server")
        return str(info.get("redis_version"))
    finally:
        await client.aclose()


async def main() -> None:
    parser = common_arguments(__doc__ or "", samples=200, gap_ms=10.0)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--tuned", type=int, default=50, help="max_concurrent_tasks of our tuned case")
    parser.add_argument(
        "--peer-tuned", type=int, default=50, help="concurrency/prefetch of the peers' tuned cases"
    )
    parser.add_argument("--no-ceiling", action="store_true", help="skip redis-benchmark")
    args = parser.parse_args()
    if (urlsplit(args.url).path or "/0").lstrip("/") in ("", "0"):
        parser.error("use a database of its own (e.g. redis://127.0.0.1:6379/15): cases FLUSHDB it")
    server_version = await flush(args.url)
    args.server_cpu = redis_server_cpu(args.url)
    print(f"{TITLE}\n  n={args.n}, latency samples={args.samples}, Redis {server_version}, {args.url}")
    try:
        all_cases = cases(args.url, args.tuned, args.peer_tuned)
        results = await run_all(TITLE, selected(all_cases, args.only), args, load_driver)
        limits = {} if args.no_ceiling else ceiling(args.url)
    finally:
        await flush(args.url)
    verdicts = evaluate(results, TARGETS)
    pairs = pair_ratios(results, PAIRS)
    print_report(TITLE, results, verdicts)
    print_pairs(pairs)
    if limits:
        print(f"\nredis-benchmark ceiling ({limits['command']}):")
        for line in limits.get("output", [limits.get("error")]):
            print(f"  {line}")
    path = write_json(
        "redis",
        args,
        results,
        verdicts,
        {
            "versions": versions(
                ["sheppy-core", "sheppy-redis", "redis", "sheppy", "taskiq", "taskiq-redis", "saq"]
            ),
            "server_version": server_version,
            "redis_benchmark": limits,
            "pairs": pairs,
        },
    )
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    asyncio.run(main())

"""sheppy-postgres vs pgqueuer and procrastinate on one PostgreSQL database.

    python benchmarks/bench_postgres.py [--n 10000] [--samples 200] [--dsn postgresql://postgres@127.0.0.1/test]
                                        [--tuned 50] [--pgq-batch 100] [--only pgqueuer] [--profile]

Every system works in its own schema of the same database (``bench_sheppy``, ``bench_pgqueuer``,
``bench_procrastinate``; ``bench_sheppy_tuned`` and ``bench_sheppy_poll`` for our other cases),
created fresh and dropped at the end. Targets (issue 7): batch enqueue and
processing ≥ pgqueuer at its better setting; idle pick-up p50 ≤ 4 ms.
"""

from __future__ import annotations

import asyncio

import asyncpg
from _harness import (
    Case,
    Target,
    common_arguments,
    evaluate,
    load_driver,
    pair_ratios,
    postgres_server_cpu,
    print_pairs,
    print_report,
    run_all,
    selected,
    versions,
    write_json,
)

TITLE = "sheppy-postgres vs pgqueuer vs procrastinate, one worker process, no-op tasks"
SCHEMAS = (
    "bench_sheppy", "bench_sheppy_tuned", "bench_sheppy_poll", "bench_sheppy_procs", "bench_pgqueuer",
    "bench_procrastinate",
)


def cases(
    dsn: str,
    tuned: int,
    prefetch: int,
    pgq_batch: int,
    procrastinate_concurrency: int,
    procrastinate_n: int,
) -> list[Case]:
    def ours(schema: str) -> str:
        return f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"

    return [
        Case(
            "sheppy-postgres",
            "defaults",
            "sys_sheppy_core",
            {"url": ours("bench_sheppy"), "queue": "bench"},
            ours=True,
        ),
        Case(
            "sheppy-postgres",
            f"max_concurrent_tasks={tuned}, prefetch={prefetch}",
            "sys_sheppy_core",
            {
                "url": ours("bench_sheppy_tuned"),
                "queue": "bench",
                "max_concurrent_tasks": tuned,
                "prefetch": prefetch,
            },
            ours=True,
        ),
        # What ``sheppy work --processes 2`` runs: two worker processes at their defaults, one store.
        Case(
            "sheppy-postgres",
            "processes=2",
            "sys_sheppy_core",
            {"url": ours("bench_sheppy_procs"), "queue": "bench"},
            ours=True,
            processes=2,
        ),
        # Without LISTEN/NOTIFY (for poolers that drop it): idle waiters poll every poll_interval, so
        # this case's pick-up shows what the notifications are worth.
        Case(
            "sheppy-postgres",
            "listen=false",
            "sys_sheppy_core",
            {"url": ours("bench_sheppy_poll") + "&listen=false", "queue": "bench"},
            ours=True,
        ),
        Case(
            "pgqueuer",
            "defaults (batch_size=10)",
            "sys_pgqueuer",
            {"dsn": dsn, "schema": "bench_pgqueuer"},
            peer_group="pgqueuer",
        ),
        Case(
            "pgqueuer",
            f"batch_size={pgq_batch}",
            "sys_pgqueuer",
            {"dsn": dsn, "schema": "bench_pgqueuer", "batch_size": pgq_batch},
            peer_group="pgqueuer",
        ),
        Case(
            "procrastinate",
            "defaults (concurrency=1)",
            "sys_procrastinate",
            {"dsn": dsn, "schema": "bench_procrastinate"},
            peer_group="procrastinate",
            max_n=procrastinate_n,
        ),
        Case(
            "procrastinate",
            f"concurrency={procrastinate_concurrency}",
            "sys_procrastinate",
            {"dsn": dsn, "schema": "bench_procrastinate", "concurrency": procrastinate_concurrency},
            peer_group="procrastinate",
            max_n=procrastinate_n,
        ),
    ]


TARGETS = [
    Target("enqueue_per_s", "ratio", 1.0, "pgqueuer", "batch enqueue: ours >= pgqueuer (its better setting)"),
    Target("process_per_s", "ratio", 1.0, "pgqueuer", "processing, one worker process: ours >= pgqueuer"),
    Target("pickup_p50_ms", "max", 4.0, "", "idle pick-up p50 <= 4 ms"),
    Target(
        "server_cpu_ms_per_task", "ratio", 1.0, "pgqueuer",
        "server CPU per processed task: ours <= pgqueuer's",
    ),
]

PAIRS = [
    ("two worker processes (target >= 1.5x)", "sheppy-postgres [processes=2]", "sheppy-postgres [defaults]"),
]


async def drop_schemas(dsn: str) -> str:
    connection = await asyncpg.connect(dsn)
    try:
        for schema in SCHEMAS:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


async def main() -> None:
    parser = common_arguments(__doc__ or "", samples=200, gap_ms=10.0)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1/test")
    parser.add_argument("--tuned", type=int, default=50, help="max_concurrent_tasks of our tuned case")
    parser.add_argument("--prefetch", type=int, default=50, help="Worker prefetch of our tuned case")
    parser.add_argument("--pgq-batch", type=int, default=100, help="pgqueuer batch_size of its tuned case")
    parser.add_argument("--procrastinate-concurrency", type=int, default=10)
    parser.add_argument(
        "--procrastinate-n",
        type=int,
        default=2000,
        help="tasks for procrastinate's cases (it processes a few hundred per second; default 2000)",
    )
    args = parser.parse_args()
    server_version = await drop_schemas(args.dsn)
    # The server's CPU is read from /proc: it counts when PostgreSQL runs on this machine.
    args.server_cpu = postgres_server_cpu if postgres_server_cpu() is not None else None
    args.wal_dsn = args.dsn  # WAL bytes per processed task, from the server's WAL position
    print(f"{TITLE}\n  n={args.n}, latency samples={args.samples}, PostgreSQL {server_version}, {args.dsn}")
    try:
        all_cases = cases(
            args.dsn,
            args.tuned,
            args.prefetch,
            args.pgq_batch,
            args.procrastinate_concurrency,
            args.procrastinate_n,
        )
        results = await run_all(TITLE, selected(all_cases, args.only), args, load_driver)
    finally:
        await drop_schemas(args.dsn)
    verdicts = evaluate(results, TARGETS)
    pairs = pair_ratios(results, PAIRS)
    print_report(TITLE, results, verdicts)
    print_pairs(pairs)
    path = write_json(
        "postgres",
        args,
        results,
        verdicts,
        {
            "versions": versions(
                ["sheppy-core", "sheppy-postgres", "asyncpg", "pgqueuer", "procrastinate", "psycopg"]
            ),
            "server_version": server_version,
            "pairs": pairs,
        },
    )
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    asyncio.run(main())

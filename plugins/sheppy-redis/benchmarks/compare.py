"""sheppy-core + sheppy-redis against sheppy 0.0.7, taskiq-redis and saq, in one run on one Redis.

    python plugins/sheppy-redis/benchmarks/compare.py [--python PY] [--tasks 10000] [--db 12]

``--python`` is an interpreter that has all four installed (the contenders are benchmark-only
dependencies, never dependencies of sheppy-redis), e.g.::

    python -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install sheppy==0.0.7 taskiq-redis saq -e . -e plugins/sheppy-redis

For each system, in its own processes, on Redis database ``--db`` (which must be empty; it is flushed
between systems and at the end):

* **enqueue**: ``--tasks`` no-op tasks in batches of 1,000, each system's fastest way (sheppy: one
  ``Queue.add(list)`` per batch; taskiq and saq have no batch call: 1,000 concurrent ``kiq``/``enqueue``
  calls per batch), timed in the producer including building the task objects; for the two sheppy
  systems also ``Queue.add`` alone, with the task objects built beforehand;
* **process**: one worker process with 50 concurrent slots drains them (taskiq: ``RedisStreamBroker``,
  the one with acknowledgements; saq: its ``Worker``); timed inside the worker from start to the last
  task counted by the task function itself.

Then the ``redis-benchmark`` ceiling (SET with 1 and 50 clients) and sheppy-redis's idle pick-up
latency. Prints a table and the ratios of sheppy-redis to each contender.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

BATCH = 1000
SLOTS = 50
SYSTEMS = ("sheppy-redis", "sheppy-0.0.7", "taskiq-redis", "saq")
HERE = os.path.dirname(os.path.abspath(__file__))

# -- the orchestrator ---------------------------------------------------------------------------


def _redis_cli(db: int, *args: str) -> str:
    command = ["redis-cli", "-n", str(db), *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def _child(python: str, name: str, phase: str, url: str, n: int) -> float:
    env = {**os.environ, "SHEPPY_BENCH_URL": url}
    command = [python, __file__, "--child", name, phase, str(n)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{name} {phase} failed:\n{out.stderr[-3000:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def _redis_benchmark(db: int) -> dict[str, float]:
    ceiling = {}
    for clients in (1, 50):
        out = subprocess.run(
            ["redis-benchmark", "-h", "127.0.0.1", "-p", "6379", "--dbnum", str(db), "-t", "set",
             "-n", "20000", "-c", str(clients), "-q"],
            capture_output=True, text=True, timeout=120,
        ).stdout
        for line in out.replace("\r", "\n").splitlines():
            if "requests per second" in line:
                ceiling[f"SET, {clients} client(s)"] = float(line.split(":")[1].split()[0])
    return ceiling


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, name, phase, n = sys.argv
        sys.path.insert(0, HERE)
        import contenders

        print(json.dumps(contenders.run_phase(name, phase, int(n))), flush=True)
        os._exit(0)  # do not wait for the contenders' background tasks and thread pools
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--db", type=int, default=12)
    options = parser.parse_args()
    url = f"redis://127.0.0.1:6379/{options.db}"
    if int(_redis_cli(options.db, "dbsize").strip() or 0):
        raise SystemExit(f"Redis database {options.db} is not empty: pick an unused one with --db")
    results: dict[str, dict[str, float]] = {}
    try:
        for name in SYSTEMS:
            enqueue_s = _child(options.python, name, "enqueue", url, options.tasks)
            work_s = _child(options.python, name, "work", url, options.tasks)
            results[name] = {"enqueue": options.tasks / enqueue_s, "process": options.tasks / work_s}
            _redis_cli(options.db, "flushdb")
        add_only = {}
        for name in SYSTEMS[:2]:
            add_only[name] = options.tasks / _child(options.python, name, "add", url, options.tasks)
            _redis_cli(options.db, "flushdb")
        ceiling = _redis_benchmark(options.db)
    finally:
        _redis_cli(options.db, "flushdb")
    latency = subprocess.run(
        [options.python, os.path.join(HERE, "..", "scripts", "pickup_latency.py"),
         "--url", url], capture_output=True, text=True, timeout=300,
    ).stdout.strip()
    _redis_cli(options.db, "flushdb")

    print(f"{options.tasks} no-op tasks, batches of {BATCH}, one worker process with {SLOTS} slots")
    print(f"{'system':<14}{'enqueue/s':>12}{'process/s':>12}")
    for name, row in results.items():
        print(f"{name:<14}{row['enqueue']:>12,.0f}{row['process']:>12,.0f}")
    ours = results["sheppy-redis"]
    for name in SYSTEMS[1:]:
        print(f"sheppy-redis / {name}: enqueue x{ours['enqueue'] / results[name]['enqueue']:.2f}, "
              f"process x{ours['process'] / results[name]['process']:.2f}")
    print(
        f"Queue.add alone (task objects built beforehand): sheppy-redis {add_only[SYSTEMS[0]]:,.0f}/s, "
        f"sheppy-0.0.7 {add_only[SYSTEMS[1]]:,.0f}/s, x{add_only[SYSTEMS[0]] / add_only[SYSTEMS[1]]:.2f}"
    )
    for label, value in ceiling.items():
        print(f"redis-benchmark ceiling, {label}: {value:,.0f} ops/s")
    print(latency)


if __name__ == "__main__":
    main()

"""Sessions: tests, conformance per backend, lint, types, benchmarks, wheels.

``nox -s tests`` runs the whole suite as CI does; ``nox -s docs`` builds the docs site (docs/,
mkdocs.yml); ``nox -s "conformance(backend='sqlite')"`` (memory,
sqlite, redis, postgres, jsonfile) runs the shared backend suite against one backend and writes its
report under ``reports/``; ``nox -s multiprocess`` is SQLite's many-process test; ``nox -s soak`` the
fault soak (not in CI; ``nox -s soak -- --minutes 10``); ``nox -s bench`` the benchmarks.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["lint", "types", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
DISTRIBUTIONS = (
    ".",
    "conformance",
    "plugins/sheppy-sqlite",
    "plugins/sheppy-redis",
    "plugins/sheppy-postgres",
)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite (needs Redis and PostgreSQL on 127.0.0.1)."""
    session.install("-r", "requirements-test.txt")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")


@nox.session(python=PYTHON)
def types(session: nox.Session) -> None:
    session.install("-r", "requirements-test.txt")
    session.run("mypy")


CONFORMANCE_URLS = {
    "memory": "memory://",
    "sqlite": "sqlite:///{tmp}/conformance.db",
    "redis": "redis://127.0.0.1:6379/14",
    "postgres": "postgresql://postgres@127.0.0.1/test",
    "jsonfile": "jsonfile:///{tmp}/conformance.json",
}


@nox.session(python=PYTHON)
@nox.parametrize("backend", list(CONFORMANCE_URLS))
def conformance(session: nox.Session, backend: str) -> None:
    """The shared backend suite against one backend; writes reports/conformance-<backend>.{json,md}."""
    session.install("-r", "requirements-test.txt")
    url = CONFORMANCE_URLS[backend].format(tmp=session.create_tmp())
    Path("reports").mkdir(exist_ok=True)
    session.run(
        "pytest", "--pyargs", "sheppy_conformance", "--sheppy-backend", url,
        "--sheppy-report", f"reports/conformance-{backend}", *session.posargs,
    )  # fmt: skip


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The docs site: fresh conformance reports of every bundled backend, the compatibility matrix
    (docs/backends/matrix.md) made from them, then ``mkdocs build --strict`` into site/."""
    session.install("-r", "requirements-test.txt")
    Path("reports").mkdir(exist_ok=True)
    for backend, url in CONFORMANCE_URLS.items():
        session.run(
            "pytest", "-q", "--pyargs", "sheppy_conformance", "--sheppy-backend",
            url.format(tmp=session.create_tmp()), "--sheppy-report", f"reports/conformance-{backend}",
            success_codes=[0, 1],  # a failing clause is a verdict for the matrix, not a broken build
        )  # fmt: skip
    reports = [f"reports/conformance-{backend}.json" for backend in CONFORMANCE_URLS]
    matrix = session.run("python", "-m", "sheppy_conformance.matrix", *reports, silent=True)
    Path("docs/backends/matrix.md").write_text(str(matrix), encoding="utf-8")
    session.run("mkdocs", "build", "--strict")


@nox.session(python=PYTHON)
def multiprocess(session: nox.Session) -> None:
    """SQLite: 4 worker processes, 8,000 tasks on one file, every task completed exactly once."""
    session.install("-r", "requirements-test.txt")
    session.run("pytest", "plugins/sheppy-sqlite/tests/test_multiprocess.py", "-v", *session.posargs)


@nox.session(python=PYTHON)
def soak(session: nox.Session) -> None:
    """Fault soak, not in CI: kills, stops, outages and corrupt records against SQLite, Redis and
    PostgreSQL, 10 minutes each; prints the counts, fails on any lost or doubly run task. Args after --
    go to tests/faults/soak.py (e.g. -- --minutes 2 --seed 7, or --backend redis)."""
    session.install("-r", "requirements-test.txt")
    session.run("python", "tests/faults/soak.py", "--backend", "all", "--minutes", "10", *session.posargs)


@nox.session(python=PYTHON)
def wheels(session: nox.Session) -> None:
    """Build the sdist and wheel of every distribution into dist/ and check them with
    ``twine check --strict`` (tests/test_packaging.py also installs them by name and runs the demo)."""
    session.install("build", "twine")
    for path in DISTRIBUTIONS:
        session.run("python", "-m", "build", "--sdist", "--wheel", "--outdir", "dist", path)
    session.run("twine", "check", "--strict", *sorted(str(p) for p in Path("dist").iterdir()))


# -- benchmarks (benchmarks/README.md) ------------------------------------------------------------
# Each family gets its own venv: the repository's distributions plus the peers it is measured
# against (benchmarks/requirements-*.txt), which are never dependencies of ours.
BENCH_FAMILIES = {
    "sqlite": "plugins/sheppy-sqlite",
    "redis": "plugins/sheppy-redis",
    "postgres": "plugins/sheppy-postgres",
}


def _bench(session: nox.Session, family: str) -> None:
    session.install("-e", ".", "-e", BENCH_FAMILIES[family], "-r", f"benchmarks/requirements-{family}.txt")
    session.run("python", f"benchmarks/bench_{family}.py", *session.posargs)


@nox.session(python=PYTHON, name="bench-sqlite")
def bench_sqlite(session: nox.Session) -> None:
    """sheppy-sqlite vs huey (SqliteHuey); args after -- go to the script (e.g. -- --n 2000)."""
    _bench(session, "sqlite")


@nox.session(python=PYTHON, name="bench-redis")
def bench_redis(session: nox.Session) -> None:
    """sheppy-redis vs sheppy 0.0.7, taskiq-redis and saq on Redis db 15 (needs 127.0.0.1:6379)."""
    _bench(session, "redis")


@nox.session(python=PYTHON, name="bench-postgres")
def bench_postgres(session: nox.Session) -> None:
    """sheppy-postgres vs pgqueuer and procrastinate in database `test` (needs 127.0.0.1:5432)."""
    _bench(session, "postgres")


@nox.session(python=PYTHON, name="bench-metrics")
def bench_metrics(session: nox.Session) -> None:
    """Processing throughput with metrics off, on, and traced (memory:// and SQLite; target: metrics on
    >= 0.95 x off); args after -- go to benchmarks/bench_metrics.py (e.g. -- --tasks 2000)."""
    session.install("-e", ".[prometheus,otel]", "-e", BENCH_FAMILIES["sqlite"], "opentelemetry-sdk")
    session.run("python", "benchmarks/bench_metrics.py", *session.posargs)


@nox.session(python=PYTHON, name="bench-records")
def bench_records(session: nox.Session) -> None:
    """What a task record costs to build, encode, store and read back: the full JSON form against the
    compact one stored now (target: Queue.add's record building and encoding of 10,000 tasks < 30 ms)."""
    session.install("-e", ".", "-e", BENCH_FAMILIES["sqlite"])
    session.run("python", "benchmarks/bench_records.py", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """All three benchmark families, one after the other, in one venv."""
    # One pip call, so the plugins' dependency on sheppy-core resolves to this checkout.
    arguments = ["-e", "."]
    for family, plugin in BENCH_FAMILIES.items():
        arguments += ["-e", plugin, "-r", f"benchmarks/requirements-{family}.txt"]
    session.install(*arguments)
    for family in BENCH_FAMILIES:
        session.run("python", f"benchmarks/bench_{family}.py", *session.posargs)

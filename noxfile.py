"""Sessions: tests, conformance per backend, lint, types, benchmarks, wheels.

``nox -s tests`` runs the whole suite as CI does; ``nox -s conformance-memory`` (etc.) runs the shared
backend suite against one backend and writes its report under ``reports/``.
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


@nox.session(python=PYTHON)
def wheels(session: nox.Session) -> None:
    """Build every distribution of the repository into dist/."""
    session.install("build")
    for path in DISTRIBUTIONS:
        if (Path(path) / "pyproject.toml").exists():
            session.run("python", "-m", "build", "--wheel", "--outdir", "dist", path)

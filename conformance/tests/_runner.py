"""Run the conformance suite in a subprocess and read its JSON report (shared by the meta-tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CAUGHT", "SuiteRun", "run_suite", "run_suites"]

TESTS_DIR = Path(__file__).resolve().parent
RUN_SECONDS = 170

CAUGHT: dict[str, list[str]] = {}
"""Mutant -> the clauses that failed, filled by test_mutants.py and printed by conftest.py."""


@dataclass
class SuiteRun:
    name: str
    returncode: int
    report: dict[str, Any]
    output: str

    @property
    def failed(self) -> list[str]:
        return sorted(c for c, e in self.report.get("clauses", {}).items() if e["outcome"] == "failed")

    def outcomes(self) -> dict[str, str]:
        return {c: e["outcome"] for c, e in self.report.get("clauses", {}).items()}


def run_suite(
    name: str, backend_args: list[str], workdir: Path, env: dict[str, str] | None = None
) -> SuiteRun:
    """``pytest --pyargs sheppy_conformance <backend_args>`` with an empty ini file (strict asyncio mode,
    none of the surrounding project's settings), reporting to ``workdir/<name>.json``."""
    workdir.mkdir(parents=True, exist_ok=True)
    ini = workdir / "pytest.ini"
    ini.write_text("[pytest]\n")
    report = workdir / name
    command = [
        sys.executable, "-m", "pytest", "-c", str(ini), "--rootdir", str(workdir), "-p", "no:cacheprovider",
        "-q", "--pyargs", "sheppy_conformance", *backend_args, "--sheppy-report", str(report),
    ]
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS_DIR),
                                                                              os.environ.get("PYTHONPATH")])))
    environment.update(env or {})
    done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_SECONDS, cwd=workdir,
                          env=environment, check=False)
    json_path = workdir / f"{name}.json"
    data = json.loads(json_path.read_text()) if json_path.exists() else {}
    return SuiteRun(name, done.returncode, data, done.stdout[-20_000:] + done.stderr[-5_000:])


def run_suites(jobs: dict[str, list[str]], workdir: Path, parallel: int = 10) -> dict[str, SuiteRun]:
    """Several runs at once: the suite mostly sleeps (leases, timeouts), so they overlap well on 2 cores."""
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = {name: pool.submit(run_suite, name, args, workdir / name) for name, args in jobs.items()}
        return {name: future.result() for name, future in futures.items()}

"""The example third-party plugin (examples/sheppy-jsonfile) is found by its URL scheme through its entry
point, and passes every required clause of the suite run by URL."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest
from _runner import run_suite
from sheppy_conformance.plugin import NO_HOOK_PREFIX

from sheppy_core import get_backend


def test_jsonfile_entry_point_is_installed() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="sheppy")}
    assert names.get("jsonfile") == "sheppy_jsonfile._plugin", (
        "install the example first: pip install -e examples/sheppy-jsonfile")


def test_jsonfile_scheme_resolves_through_the_registry(tmp_path: Path) -> None:
    backend = get_backend(f"jsonfile://{tmp_path}/store.json")
    assert type(backend).__name__ == "JsonFileBackend"
    assert type(backend).__module__.startswith("sheppy_jsonfile")


@pytest.mark.timeout(200)
def test_jsonfile_passes_the_suite_by_url(tmp_path: Path) -> None:
    run = run_suite("jsonfile", ["--sheppy-backend", f"jsonfile://{tmp_path}/store.json"], tmp_path / "run")
    assert run.returncode == 0, run.output
    outcomes = run.outcomes()
    assert "failed" not in outcomes.values()
    assert run.report["backend"]["name"] == "JsonFileBackend"
    # Only optional clauses may skip, and they say why.
    for clause_id, entry in run.report["clauses"].items():
        if entry["outcome"] == "skipped":
            # ... or because the run supplied no hook the clause needs (by URL: no store writer).
            assert entry["reason"].startswith(("backend does not declare capability ", NO_HOOK_PREFIX)), (
                clause_id
            )
    assert outcomes["pop.exclusive"] == outcomes["reconnect.recovers"] == "passed"

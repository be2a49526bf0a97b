"""The pytest plugin itself: inert by default, capability skips, known failures, reports, the CLI run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

SUBCLASS = """
from sheppy_conformance import BackendConformance
import sheppy_mutants

class TestBackend(BackendConformance):
    known_failures = {known!r}

    def make_backend(self):
        return sheppy_mutants.{mutant}.build()
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    pytester.makeini("[pytest]\n")
    return pytester


def write_subclass(
    pytester: pytest.Pytester, mutant: str = "_Mutant", known: dict[str, str] | None = None
) -> None:
    pytester.makepyfile(test_adopter=SUBCLASS.format(known=known or {}, mutant=mutant))


def test_import_is_cheap() -> None:
    code = ("import sys, sheppy_conformance.plugin; "
            "print(sorted(m for m in ('sheppy_core', 'hypothesis', 'pytest_asyncio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_inert_without_options(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_plain="def test_one():\n    assert True\n")
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "sheppy conformance" not in result.stdout.str()


def test_pyargs_without_backend_is_a_usage_error(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("--pyargs", "sheppy_conformance", "-k", "pop_fifo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--sheppy-backend" in result.stderr.str()


def test_subclass_known_failure_is_xfail(suite: pytest.Pytester) -> None:
    write_subclass(suite, "Lifo", {"pop.fifo": "claims newest first"})
    result = suite.runpytest_subprocess("-k", "test_pop_fifo")
    result.assert_outcomes(xfailed=3)
    result.stdout.fnmatch_lines(["pop.fifo*xfail (declared known failure: claims newest first)"])


def test_declared_failure_that_passes_is_reported(suite: pytest.Pytester) -> None:
    write_subclass(suite, "_Mutant", {"pop.fifo": "stale declaration"})
    result = suite.runpytest_subprocess("-k", "test_pop_fifo", "--sheppy-report", "report")
    result.assert_outcomes(xpassed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["pop.fifo*failed (declared failure now passes: clause pop.fifo*",
                                 "declared failure now passes: clause pop.fifo*stale declaration*"])
    report = json.loads((suite.path / "report.json").read_text())
    assert report["clauses"]["pop.fifo"]["outcome"] == "failed"


def test_declared_failure_of_a_clause_with_passing_siblings(suite: pytest.Pytester) -> None:
    # With Lifo only one of pop.claim's two tests fails: the declaration holds and the run is green.
    write_subclass(suite, "Lifo", {"pop.claim": "claims newest first"})
    result = suite.runpytest_subprocess("-k", "test_pop_claim")
    result.assert_outcomes(xfailed=1, xpassed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["pop.claim*xfail (declared known failure: claims newest first)"])


def test_missing_capability_skips_with_the_reason(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_adopter="""
from sheppy_conformance import BackendConformance
import sheppy_mutants

class Plain(sheppy_mutants._Mutant):
    capabilities = frozenset()

class TestBackend(BackendConformance):
    def make_backend(self):
        return Plain(instant_processing=False)
""")
    result = suite.runpytest_subprocess("-k", "rate_limit_sliding or pop_blocks", "-rs")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["*backend does not declare capability rate_limit*",
                                 "*backend does not declare capability blocking_pop*"])


def test_required_clause_cannot_be_skipped(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_adopter="""
import pytest
from sheppy_conformance import BackendConformance

class TestBackend(BackendConformance):
    @pytest.fixture
    def backend_factory(self):
        pytest.skip("no server today")
""")
    result = suite.runpytest_subprocess("-k", "test_pop_limit or test_rate_limit_input")
    result.assert_outcomes(errors=1, skipped=1)
    expected = "*required clause pop.limit cannot be skipped (skip reason: no server today)"
    result.stdout.fnmatch_lines([expected])


def test_cli_run_known_failure_and_report(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess(
        "--pyargs", "sheppy_conformance", "--sheppy-backend-factory", "sheppy_mutants:Lifo.build",
        "--sheppy-known-failure", "pop.fifo=newest first", "--sheppy-report", "out/report.json",
        "-k", "test_pop_fifo or test_pop_limit or test_append_status")
    result.assert_outcomes(passed=2, xfailed=3)
    report = json.loads((suite.path / "out" / "report.json").read_text())
    assert report["backend"]["name"] == "Lifo"
    assert report["clauses"]["pop.fifo"]["outcome"] == "xfail"
    assert report["clauses"]["pop.limit"]["outcome"] == "passed"
    assert report["summary"] == {"passed": 2, "failed": 0, "skipped": 0, "xfail": 1}
    markdown = (suite.path / "out" / "report.md").read_text()
    assert "| `pop.fifo` | xfail |" in markdown


def test_ini_known_failures(suite: pytest.Pytester) -> None:
    suite.makeini("[pytest]\nsheppy_known_failures =\n    pop.fifo: newest first\n")
    result = suite.runpytest_subprocess(
        "--pyargs", "sheppy_conformance", "--sheppy-backend-factory", "sheppy_mutants:Lifo.build",
        "-k", "test_pop_fifo")
    result.assert_outcomes(xfailed=3)


def test_cli_drop_connection_hook_is_used(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    log = suite.path / "drops.log"
    monkeypatch.setenv("SHEPPY_DROP_LOG", str(log))
    result = suite.runpytest_subprocess(
        "--pyargs", "sheppy_conformance", "--sheppy-backend", "memory://",
        "--sheppy-drop-connection", "sheppy_mutants:drop_and_log", "-k", "reconnect")
    result.assert_outcomes(passed=2)
    assert log.read_text().splitlines() == ["MemoryBackend"] * 3


def test_two_suites_in_one_session_are_reported_apart(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_adopter="""
from sheppy_conformance import BackendConformance
import sheppy_mutants

class TestReference(BackendConformance):
    def make_backend(self):
        return sheppy_mutants._Mutant.build()

class TestLifo(BackendConformance):
    def make_backend(self):
        return sheppy_mutants.Lifo.build()
""")
    result = suite.runpytest_subprocess("-k", "test_pop_fifo", "--sheppy-report", "both")
    result.assert_outcomes(passed=3, failed=3)
    result.stdout.fnmatch_lines(["*sheppy conformance _Mutant*", "pop.fifo*passed",
                                 "*sheppy conformance Lifo*", "pop.fifo*failed*"])
    suites = json.loads((suite.path / "both.json").read_text())["suites"]
    assert {key.rsplit("::", 1)[-1]: s["clauses"]["pop.fifo"]["outcome"] for key, s in suites.items()} == {
        "TestReference": "passed", "TestLifo": "failed"}

"""The pytest plugin itself: inert by default, capability skips, known failures, reports, the CLI run."""

from __future__ import annotations

import json
import os
import re
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


# -- runs as an outside author makes them: `pytest --pyargs sheppy_conformance ...` from a directory with
# no config file at all (no ini, so none of this repository's settings apply).

def run_outside(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    python_path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=python_path)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--pyargs", "sheppy_conformance",
               *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=170,
                          check=False)


def contract_methods() -> list[str]:
    from sheppy_core.backend import Backend

    return sorted(Backend.__abstractmethods__)


CONNECTION_METHODS = {"connect", "disconnect", "is_connected"}  # all that sheppy_stubs.HalfDone has


@pytest.mark.parametrize(
    ("backend_args", "implemented"),
    [
        (["--sheppy-backend", "stub://"], set()),  # the plugin class registered for stub:// is abstract
        (["--sheppy-backend-factory", "sheppy_stubs:HalfDone"], CONNECTION_METHODS),
        (["--sheppy-backend-factory", "sheppy_stubs:make_half_done"], CONNECTION_METHODS),
    ],
    ids=["url", "factory-class", "factory-function"],
)
def test_an_abstract_backend_stops_the_run_once_naming_what_is_missing(
    tmp_path: Path, backend_args: list[str], implemented: set[str]
) -> None:
    done = run_outside(tmp_path, *backend_args)
    output = done.stdout + done.stderr
    assert done.returncode not in (0, pytest.ExitCode.NO_TESTS_COLLECTED), output
    assert "Traceback" not in output and output.count("Can't instantiate") <= 1, output
    assert "passed" not in done.stdout and " error" not in done.stdout, output
    problem = [line for line in output.splitlines() if "abstract" in line and "missing" in line]
    assert len(problem) == 1, output
    missing = [name for name in contract_methods() if name not in implemented]
    for name in missing:
        assert name in problem[0], (name, problem[0])
    for name in implemented:
        assert f" {name}," not in problem[0] and f" {name} " not in problem[0], problem[0]
    assert f"{len(missing)} of {len(contract_methods())}" in problem[0]
    assert len(output.splitlines()) < 30, output


@pytest.mark.parametrize(
    ("url", "expected"),
    [("nope://user:secret@x", "Unsupported backend protocol"), ("memory://?bogus=1", "bogus")],
)
def test_an_invalid_url_is_one_error(tmp_path: Path, url: str, expected: str) -> None:
    done = run_outside(tmp_path, "--sheppy-backend", url)
    output = done.stdout + done.stderr
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert output.count(expected) == 1 and "Traceback" not in output, output
    assert "secret" not in output
    assert len(output.splitlines()) < 30, output


def test_a_subclass_whose_backend_is_abstract_stops_once(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_adopter="""
from sheppy_conformance import BackendConformance
import sheppy_stubs

class TestHalfDone(BackendConformance):
    def make_backend(self):
        return sheppy_stubs.HalfDone()
""")
    result = suite.runpytest_subprocess()
    output = result.stdout.str() + result.stderr.str()
    assert result.ret not in (0, pytest.ExitCode.NO_TESTS_COLLECTED)
    assert output.count("Can't instantiate") <= 1, output
    problem = [line for line in output.splitlines() if "abstract" in line and "missing" in line]
    assert len(problem) == 1 and "acknowledge" in problem[0] and "HalfDone" in problem[0], output


def test_a_run_with_no_config_file_shows_no_loop_scope_warning(tmp_path: Path) -> None:
    done = run_outside(tmp_path, "--sheppy-backend", "memory://", "-k", "test_pop_fifo")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "configfile" not in output  # really no config file: pytest names one it found
    assert "asyncio_default_fixture_loop_scope\" is unset" not in output
    assert "PytestDeprecationWarning" not in output, output
    # A setting the user makes still wins.
    chosen = run_outside(tmp_path, "--sheppy-backend", "memory://", "-k", "test_pop_fifo",
                         "-o", "asyncio_default_fixture_loop_scope=module")
    assert chosen.returncode == 0 and "asyncio_default_fixture_loop_scope=module" in chosen.stdout


def test_report_records_the_versions_and_the_date(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta
    from importlib.metadata import version

    before = datetime.now(UTC)
    done = run_outside(tmp_path, "--sheppy-backend", "jsonfile://" + str(tmp_path / "store.json"),
                       "-k", "test_pop_fifo", "--sheppy-report", "report")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["versions"] == {
        "sheppy-core": version("sheppy-core"),
        "sheppy-conformance": version("sheppy-conformance"),
        "sheppy-jsonfile": version("sheppy-jsonfile"),
    }
    assert report["backend"]["distribution"] == "sheppy-jsonfile"
    run_at = datetime.fromisoformat(report["date"])
    assert before - timedelta(seconds=1) <= run_at <= datetime.now(UTC)
    markdown = (tmp_path / "report.md").read_text()
    assert f"sheppy-jsonfile {version('sheppy-jsonfile')}" in markdown
    assert f"sheppy-core {version('sheppy-core')}" in markdown and report["date"][:10] in markdown


def test_the_summary_line_of_a_failure_is_the_first_line_of_its_message(suite: pytest.Pytester) -> None:
    # Was "pop.fifo...... failed (call: .../claim.py:146: AssertionError)": where, not why.
    result = suite.runpytest_subprocess(
        "--pyargs", "sheppy_conformance", "--sheppy-backend-factory", "sheppy_mutants:Lifo.build",
        "--sheppy-report", "out/report", "-k", "test_pop_fifo")
    lines = [line for line in result.stdout.lines if line.startswith("pop.fifo")]
    assert len(lines) == 1, result.stdout.str()
    summary = lines[0]
    assert " failed (call: pop(" in summary and "[pop.fifo]" in summary, summary
    assert "AssertionError" not in summary and ".py:" not in summary and "\n" not in summary
    report = json.loads((suite.path / "out" / "report.json").read_text())
    assert report["clauses"]["pop.fifo"]["reason"] == summary.split(" failed (", 1)[1].removesuffix(")")


def test_an_exception_a_backend_raises_is_summed_up_with_its_type_and_place(suite: pytest.Pytester) -> None:
    suite.makepyfile(raising_backend="""
from sheppy_core.backend import MemoryBackend

class Raising(MemoryBackend):
    async def pop(self, *args, **kwargs):
        raise KeyError("claims")

def build():
    return Raising()
""")
    result = suite.runpytest_subprocess(
        "--pyargs", "sheppy_conformance", "--sheppy-backend-factory", "raising_backend:build",
        "-k", "test_pop_limit")
    (summary,) = [line for line in result.stdout.lines if line.startswith("pop.limit")]
    expected = r"failed \(call: KeyError: 'claims' at raising_backend\.py:5, called from claim\.py:\d+\)"
    assert re.search(expected, summary), summary


def test_sheppy_clause_runs_only_the_clauses_it_names(tmp_path: Path) -> None:
    done = run_outside(tmp_path, "--sheppy-backend", "memory://", "--sheppy-clause", "pop.fifo",
                       "--sheppy-clause", "list_tasks.*", "--sheppy-report", "report")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    ran = set(report["clauses"])
    assert "pop.fifo" in ran and "list_tasks.order" in ran and "list_tasks.cursor" in ran
    assert all(c == "pop.fifo" or c.startswith("list_tasks.") for c in ran), ran
    assert "deselected" in done.stdout


def test_sheppy_clause_that_names_no_clause_is_a_usage_error(tmp_path: Path) -> None:
    done = run_outside(tmp_path, "--sheppy-backend", "memory://", "--sheppy-clause", "pop.fifoo")
    output = done.stdout + done.stderr
    assert done.returncode == 4, output
    assert "--sheppy-clause 'pop.fifoo' names no clause" in output
    assert "pop.fifo" in output  # the nearest id is offered

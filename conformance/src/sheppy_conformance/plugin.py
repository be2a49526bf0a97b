"""The pytest plugin (entry point ``pytest11``): options, known failures, the per-clause report.

Inert unless used: it adds command-line options and a marker, and only acts on tests carrying the
``sheppy_clause`` mark, i.e. the conformance suite. It imports neither sheppy-core nor the suite.

Options::

    --sheppy-backend URL                 judge the backend built from URL (``--pyargs sheppy_conformance``)
    --sheppy-backend-factory MOD:FUNC    ... or the one a zero-argument callable builds (a new, unconnected
                                         Backend on the same store at each call)
    --sheppy-drop-connection MOD:FUNC    async hook ``func(backend)`` that breaks the backend's connection
                                         (for the reconnect clauses); default: disconnect() + connect()
    --sheppy-write-stored-text MOD:FUNC  async hook ``func(backend, queue, task_id, text)`` writing raw text
                                         into the store as a queued task (robust.corrupt_record)
    --sheppy-known-failure CLAUSE=REASON declare a known failure (repeatable); ini: ``sheppy_known_failures``
    --sheppy-report PATH                 write PATH.json and PATH.md with the per-clause results
    --sheppy-no-shrink                   report a failing model.stateful sequence without shrinking it
    --sheppy-clause PATTERN              run only the clauses whose id matches PATTERN (``pop.fifo``,
                                         ``list_tasks.*``; repeatable); the others are deselected
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import importlib
import re
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from sheppy_conformance._clause import CLAUSE_MARK, clause_of, required_capability
from sheppy_conformance._report import ClauseResults, SessionResults

__all__ = [
    "NO_HOOK_PREFIX",
    "RESULTS_KEY",
    "abstract_backend_message",
    "abstract_class_of",
    "cli_backend_factory",
    "known_failures_for",
    "load_callable",
    "suite_key",
]

RESULTS_KEY = pytest.StashKey[SessionResults]()
NO_HOOK_PREFIX = "no test hook"
"""A required clause may skip only with a reason starting so: the adopter did not supply the hook
(e.g. ``write_stored_text``) the clause needs to set the store up; the report shows it."""
_CLI_SUITE_MARK = "sheppy_cli_suite"
_LOOP_SCOPE_INI = "asyncio_default_fixture_loop_scope"
_ABSTRACT_CLASS = re.compile(r"Can't instantiate abstract class (\w+)")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sheppy", "sheppy backend conformance")
    group.addoption("--sheppy-backend", metavar="URL", default=None,
                    help="backend URL to judge with `pytest --pyargs sheppy_conformance`")
    group.addoption("--sheppy-backend-factory", metavar="MODULE:CALLABLE", default=None,
                    help="zero-argument callable returning a new unconnected Backend on the same store")
    group.addoption("--sheppy-drop-connection", metavar="MODULE:CALLABLE", default=None,
                    help="async callable(backend) that breaks the backend's connection (reconnect clauses)")
    group.addoption("--sheppy-write-stored-text", metavar="MODULE:CALLABLE", default=None,
                    help="async callable(backend, queue, task_id, text) writing raw text into the store "
                         "as a queued task's record (robust.corrupt_record)")
    group.addoption("--sheppy-known-failure", metavar="CLAUSE=REASON", action="append", default=[],
                    help="declare a known failure: the clause becomes an expected failure (repeatable)")
    group.addoption("--sheppy-no-shrink", action="store_true", default=False,
                    help="do not shrink a failing model.stateful sequence (faster; for mutation runs)")
    group.addoption("--sheppy-clause", metavar="PATTERN", action="append", default=[],
                    help="run only the clauses whose id matches PATTERN (shell-style: 'list_tasks.*'; "
                         "repeatable)")
    group.addoption("--sheppy-report", metavar="PATH", default=None,
                    help="write the per-clause report to PATH.json and PATH.md")
    parser.addini("sheppy_known_failures", type="linelist", default=[],
                  help="known failures of the backend, one 'clause.id: reason' per line")


@pytest.hookimpl(tryfirst=True)  # before pytest-asyncio's pytest_configure reads the setting
def pytest_configure(config: pytest.Config) -> None:
    if _is_cli_run(config):
        _default_fixture_loop_scope(config)
    config.addinivalue_line(
        "markers", f"{CLAUSE_MARK}(clause_id, requires=None): test of a sheppy Backend contract clause"
    )
    config.addinivalue_line("markers", f"{_CLI_SUITE_MARK}: the suite run by --sheppy-backend")
    config.stash[RESULTS_KEY] = SessionResults()


def _is_cli_run(config: pytest.Config) -> bool:
    return bool(config.getoption("sheppy_backend") or config.getoption("sheppy_backend_factory"))


def _default_fixture_loop_scope(config: pytest.Config) -> None:
    """A suite run from a directory without a config file would start with pytest-asyncio's "loop scope
    unset" deprecation warning; every async fixture of the suite is function-scoped, so "function" is what
    it needs. A value from an ini file or ``-o`` wins. pytest has no public setter for an ini value: the
    lookup cache is the one place a plugin can supply one."""
    with contextlib.suppress(ValueError):  # ValueError: pytest-asyncio is not loaded (-p no:asyncio)
        if not config.getini(_LOOP_SCOPE_INI):
            config._inicache[_LOOP_SCOPE_INI] = "function"


def suite_key(node: pytest.Item) -> str:
    """Which conformance run a test belongs to: its test class (a session may judge several backends)."""
    return node.nodeid.rsplit("::", 1)[0]


def load_callable(spec: str) -> Callable[..., Any]:
    """Import ``module:attribute`` (dots allowed in the attribute) for the ``*-factory`` options."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise pytest.UsageError(f"expected 'module:callable', got {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise pytest.UsageError(f"cannot load {spec!r}: {exc}") from exc
    if not callable(target):
        raise pytest.UsageError(f"{spec!r} is not callable")
    return target  # type: ignore[no-any-return]


def cli_backend_factory(config: pytest.Config) -> Callable[[], Any]:
    """The backend factory of a command-line run: ``--sheppy-backend-factory`` or ``--sheppy-backend``."""
    factory_spec = config.getoption("sheppy_backend_factory")
    if factory_spec:
        return load_callable(factory_spec)
    url: str = config.getoption("sheppy_backend")
    from sheppy_core import get_backend

    return lambda: get_backend(url)


def abstract_backend_message(backend_class: type) -> str | None:
    """Why the suite cannot judge ``backend_class`` at all, if it is abstract; else None."""
    from sheppy_core.backend import abstract_problem

    problem = abstract_problem(backend_class)
    if problem is None:
        return None
    return (f"sheppy_conformance: cannot run the suite: {backend_class.__module__}."
            f"{backend_class.__qualname__} is {problem}; implement them (the Backend docstrings say how)")


def abstract_class_of(exc: TypeError) -> type | None:
    """The backend class a ``Can't instantiate abstract class X`` error is about, found by its name."""
    match = _ABSTRACT_CLASS.match(str(exc))
    if match is None:
        return None
    from sheppy_core.backend import Backend

    pending, seen = [Backend], set()
    while pending:
        cls = pending.pop()
        if cls.__name__ == match.group(1) and getattr(cls, "__abstractmethods__", None):
            return cls
        seen.add(cls)
        pending.extend(sub for sub in cls.__subclasses__() if sub not in seen)
    return None


def _check_cli_backend(config: pytest.Config) -> None:
    """Build one backend before any clause runs: a URL or factory that cannot give one, or a backend
    class that is abstract, would otherwise fail every test with the same traceback."""
    spec = config.getoption("sheppy_backend_factory")
    where = f"--sheppy-backend-factory {spec}" if spec else "--sheppy-backend"
    factory = cli_backend_factory(config)
    try:
        factory()
    except TypeError as exc:
        # A class given as the factory is the class at fault; a function that builds one names it.
        cls = factory if isinstance(factory, type) else abstract_class_of(exc)
        message = abstract_backend_message(cls) if cls is not None else None
        if message is not None:
            pytest.exit(message, returncode=pytest.ExitCode.TESTS_FAILED)
        raise pytest.UsageError(f"{where}: cannot build the backend: {type(exc).__name__}: {exc}") from None
    except Exception as exc:
        # The registry's errors show the URL with its password redacted and say what to install.
        raise pytest.UsageError(f"{where}: cannot build the backend: {type(exc).__name__}: {exc}") from None


def _parse_declarations(lines: list[str], separator: str, origin: str) -> dict[str, str]:
    declared = {}
    for line in lines:
        clause_id, sep, reason = line.partition(separator)
        if not sep or not clause_id.strip():
            raise pytest.UsageError(f"{origin}: expected 'clause.id{separator}reason', got {line!r}")
        declared[clause_id.strip()] = reason.strip() or "declared known failure"
    return declared


def known_failures_for(config: pytest.Config, cls: type | None) -> dict[str, str]:
    """Known failures from the test class (``known_failures``), the ini file and the command line."""
    declared: dict[str, str] = dict(getattr(cls, "known_failures", None) or {})
    declared.update(_parse_declarations(config.getini("sheppy_known_failures"), ":", "sheppy_known_failures"))
    cli = config.getoption("sheppy_known_failure")
    declared.update(_parse_declarations(cli, "=", "--sheppy-known-failure"))
    return declared


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if any(item.get_closest_marker(_CLI_SUITE_MARK) is not None for item in items):
        if not _is_cli_run(config):
            raise pytest.UsageError(
                "sheppy_conformance needs a backend: pass --sheppy-backend URL (e.g. memory://) or "
                "--sheppy-backend-factory module:callable"
            )
        _check_cli_backend(config)
    _select_clauses(config, items)
    for item in items:
        clause_id = clause_of(item)
        if clause_id is None:
            continue
        declared = known_failures_for(config, getattr(item, "cls", None))
        if clause_id in declared:
            reason = declared[clause_id]
            # Not strict per test: a clause often has several tests and only some may fail. Staleness is
            # judged per clause at the end (every test of a declared clause passing fails the run).
            item.add_marker(pytest.mark.xfail(strict=False, reason=f"declared known failure: {reason}"))
            config.stash[RESULTS_KEY].suite(suite_key(item)).declared[clause_id] = reason


def _select_clauses(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--sheppy-clause``: deselect the clause tests whose id no pattern matches (other tests stay)."""
    patterns: list[str] = config.getoption("--sheppy-clause") or []
    if not patterns:
        return
    ids = {c for c in map(clause_of, items) if c is not None}
    for pattern in patterns:
        if not fnmatch.filter(ids, pattern):
            nearest = difflib.get_close_matches(pattern, sorted(ids), n=3)
            hint = f" (did you mean {', '.join(nearest)}?)" if nearest else ""
            raise pytest.UsageError(f"--sheppy-clause {pattern!r} names no clause of the suite{hint}")
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        clause_id = clause_of(item)
        wanted = clause_id is None or any(fnmatch.fnmatchcase(clause_id, p) for p in patterns)
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    # tryfirst makes this the outermost wrapper, so it sees the report after the skipping plugin has
    # turned it into xfail / xpass.
    report: pytest.TestReport = yield
    clause_id = clause_of(item)
    if clause_id is None:
        return report
    if report.skipped and not hasattr(report, "wasxfail") and required_capability(item) is None:
        # Only capability-dependent clauses may skip, and clauses whose test hook the adopter did not
        # supply (the report says which); anything else skipping a required clause is a failure.
        reason = _skip_reason(report)
        if reason.startswith(NO_HOOK_PREFIX):
            _record(item.config.stash[RESULTS_KEY].suite(suite_key(item)), clause_id, report)
            return report
        report.outcome = "failed"
        report.longrepr = f"required clause {clause_id} cannot be skipped (skip reason: {reason})"
    _record(item.config.stash[RESULTS_KEY].suite(suite_key(item)), clause_id, report)
    return report


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def failure_summary(report: pytest.TestReport) -> str:
    """The one line the summary shows for a failed test: the first line of the assertion's message (the
    suite's messages say, in the contract's words, what the backend did and what the clause requires),
    or ``Type: message`` of the exception a backend raised, and where."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is None:  # a plain string (a skip turned failure, a collection error)
        text = str(report.longrepr).strip()
        first = next((ln for ln in text.splitlines() if ln.strip()), text)
        return first.strip()[:300]
    first = next((ln for ln in str(crash.message).splitlines() if ln.strip()), "").strip()
    if first.startswith("AssertionError: "):
        return first.removeprefix("AssertionError: ")[:300]
    where = f"{Path(str(crash.path)).name}:{crash.lineno}"
    clause_line = _suite_frame(report)
    if clause_line and clause_line != where:
        where += f", called from {clause_line}"
    return f"{first[:240]} at {where}"


def _suite_frame(report: pytest.TestReport) -> str | None:
    """``file:line`` of the suite's own frame nearest the failure: which step of the clause raised."""
    suite_dir = str(Path(__file__).parent)
    entries = getattr(getattr(report.longrepr, "reprtraceback", None), "reprentries", [])
    for entry in reversed(entries):
        location = getattr(entry, "reprfileloc", None)
        if location is not None and str(Path(location.path).resolve()).startswith(suite_dir):
            return f"{Path(location.path).name}:{location.lineno}"
    return None


def _record(results: ClauseResults, clause_id: str, report: pytest.TestReport) -> None:
    if hasattr(report, "wasxfail"):
        if report.skipped:
            results.record(clause_id, report.nodeid, "xfail", str(report.wasxfail))
        elif report.when == "call":  # an expected failure that passed (xpass)
            results.record(clause_id, report.nodeid, "passed", "xpassed")
        return
    if report.failed:
        results.record(clause_id, report.nodeid, "failed", f"{report.when}: {failure_summary(report)}")
    elif report.skipped:
        results.record(clause_id, report.nodeid, "skipped", _skip_reason(report))
    elif report.when == "call":
        results.record(clause_id, report.nodeid, "passed")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    results = session.config.stash.get(RESULTS_KEY, None)
    if results is not None and results.stale() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    session_results = config.stash.get(RESULTS_KEY, None)
    if session_results is None or not session_results.ran():
        return
    for results in session_results.ran().values():
        terminalreporter.section(f"sheppy conformance {results.backend.get('name', '')}".strip())
        for line in results.lines():
            terminalreporter.write_line(line)
        for clause_id in results.stale_declarations():
            terminalreporter.write_line(results.stale_message(clause_id), red=True)
    path = config.getoption("sheppy_report")
    if path:
        json_path, md_path = session_results.write(path)
        terminalreporter.write_line(f"report written to {json_path} and {md_path}")

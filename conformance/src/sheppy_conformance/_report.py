"""Per-clause results: gathered from pytest reports, printed at the end, written as JSON and markdown.

The JSON file is the source of the compatibility matrix in the docs: one object per run, with the
backend that was judged, the versions of what took part and when, and for every clause id its outcome
and the tests behind it.
"""

from __future__ import annotations

import importlib.metadata
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["ClauseResults", "SessionResults", "report_paths"]

# When several tests check one clause, the clause takes the worst outcome among them; a skipped test
# only counts when nothing else ran.
_SEVERITY = {"failed": 4, "xfail": 3, "passed": 2, "skipped": 1}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass
class _TestResult:
    nodeid: str
    outcome: str = "passed"
    reason: str = ""


@dataclass
class ClauseResults:
    """Collects one outcome per test and folds them into one outcome per clause."""

    tests: dict[str, tuple[str, _TestResult]] = field(default_factory=dict)  # nodeid -> (clause, result)
    backend: dict[str, Any] = field(default_factory=dict)
    declared: dict[str, str] = field(default_factory=dict)  # known failures: clause -> reason
    date: str = field(default_factory=_now)  # when the run began (UTC), so a report says how old it is

    def record(self, clause_id: str, nodeid: str, outcome: str, reason: str = "") -> None:
        """Record one phase's outcome; a later, worse phase (a failing teardown) overrides."""
        existing = self.tests.get(nodeid)
        if existing is None or _SEVERITY[outcome] > _SEVERITY[existing[1].outcome]:
            self.tests[nodeid] = (clause_id, _TestResult(nodeid, outcome, reason))

    def by_clause(self) -> dict[str, dict[str, Any]]:
        """Clause id -> outcome, reason and tests; a stale known-failure declaration counts as failed."""
        clauses = self._fold()
        for clause_id in self.stale_declarations():
            clauses[clause_id]["outcome"] = "failed"
            clauses[clause_id]["reason"] = self.stale_message(clause_id)
        return clauses

    def _fold(self) -> dict[str, dict[str, Any]]:
        clauses: dict[str, dict[str, Any]] = {}
        for clause_id, result in self.tests.values():
            entry = clauses.setdefault(clause_id, {"outcome": "skipped", "reason": "", "tests": []})
            entry["tests"].append(
                {"nodeid": result.nodeid, "outcome": result.outcome, "reason": result.reason}
            )
            if not entry["reason"] and result.outcome == entry["outcome"]:
                entry["reason"] = result.reason
            if _SEVERITY[result.outcome] > _SEVERITY[entry["outcome"]]:
                entry["outcome"], entry["reason"] = result.outcome, result.reason
        return dict(sorted(clauses.items()))

    def stale_declarations(self) -> list[str]:
        """Declared known failures whose tests ran and none failed: the declaration has gone stale."""
        folded = self._fold()
        return sorted(c for c in self.declared if c in folded and folded[c]["outcome"] == "passed")

    def stale_message(self, clause_id: str) -> str:
        return (f"declared failure now passes: clause {clause_id} was declared as a known failure "
                f"({self.declared[clause_id]}) but every test of it passes; remove it from known_failures")

    def summary(self) -> dict[str, int]:
        counts = dict.fromkeys(("passed", "failed", "skipped", "xfail"), 0)
        for entry in self.by_clause().values():
            counts[entry["outcome"]] += 1
        return counts

    def versions(self) -> dict[str, str | None]:
        """The versions a result depends on: core, the suite, the backend's distribution, and the
        server's (``server_info()["server_version"]``, where the backend reports one)."""
        versions = {name: _version(name) for name in ("sheppy-core", "sheppy-conformance")}
        if self.backend.get("distribution"):
            versions[self.backend["distribution"]] = self.backend.get("version")
        server = self.backend.get("server") or {}
        if server.get("server_version") is not None:
            versions["server"] = str(server["server_version"])
        return versions

    def as_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "versions": self.versions(), "date": self.date,
                "summary": self.summary(), "clauses": self.by_clause()}

    def lines(self) -> list[str]:
        """The terminal summary: one line per clause."""
        clauses = self.by_clause()
        width = max((len(c) for c in clauses), default=10) + 2
        out = []
        for clause_id, entry in clauses.items():
            detail = f" ({entry['reason']})" if entry["reason"] and entry["outcome"] != "passed" else ""
            out.append(f"{clause_id.ljust(width, '.')} {entry['outcome']}{detail}")
        counts = self.summary()
        out.append(", ".join(f"{n} {k}" for k, n in counts.items()) + f" of {len(clauses)} clauses")
        return out

    def markdown(self) -> str:
        backend = self.backend
        title = backend.get("name", "unknown backend")
        caps = ", ".join(backend.get("capabilities", [])) or "none"
        rows = ["| clause | outcome | detail |", "|---|---|---|"]
        for clause_id, entry in self.by_clause().items():
            detail = entry["reason"].replace("|", "\\|").replace("\n", " ")[:200]
            rows.append(f"| `{clause_id}` | {entry['outcome']} | {detail} |")
        counts = ", ".join(f"{n} {k}" for k, n in self.summary().items())
        versions = ", ".join(f"{name} {version or '?'}" for name, version in self.versions().items())
        return (
            f"# sheppy conformance: {title}\n\n"
            f"- backend: `{backend.get('class', '?')}`\n- capabilities: {caps}\n- result: {counts}\n"
            f"- versions: {versions}\n- date: {self.date}\n\n"
            + "\n".join(rows) + "\n"
        )

    def write(self, base: str) -> tuple[Path, Path]:
        json_path, md_path = report_paths(base)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.as_json(), indent=2, ensure_ascii=False)
        json_path.write_text(text + "\n", encoding="utf-8")
        md_path.write_text(self.markdown(), encoding="utf-8")
        return json_path, md_path


@dataclass
class SessionResults:
    """One :class:`ClauseResults` per conformance test class run in the session (usually one)."""

    suites: dict[str, ClauseResults] = field(default_factory=dict)

    def suite(self, key: str) -> ClauseResults:
        return self.suites.setdefault(key, ClauseResults())

    def ran(self) -> dict[str, ClauseResults]:
        return {key: results for key, results in self.suites.items() if results.tests}

    def stale(self) -> bool:
        return any(results.stale_declarations() for results in self.suites.values())

    def write(self, base: str) -> tuple[Path, Path]:
        """One suite: its report as is. Several: ``{"suites": {test class: report}}`` and one markdown
        section per suite."""
        ran = self.ran()
        if len(ran) == 1:
            return next(iter(ran.values())).write(base)
        json_path, md_path = report_paths(base)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        data = {"suites": {key: results.as_json() for key, results in ran.items()}}
        json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        md_path.write_text("\n".join(results.markdown() for results in ran.values()), encoding="utf-8")
        return json_path, md_path


def report_paths(base: str) -> tuple[Path, Path]:
    """``report`` → ``report.json`` + ``report.md``; ``x.json`` or ``x.md`` → both with those stems."""
    path = Path(base)
    if path.suffix in (".json", ".md"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".json"), path.with_name(path.name + ".md")

"""Every clause id of the contract has a test named after it, and the suite's bookkeeping is sound."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from sheppy_conformance import BackendConformance
from sheppy_conformance._clause import CLAUSE_MARK

import sheppy_core.backend._base as contract

# Clauses the issue names beyond the docstrings' ids (all must have tests too).
EXTRA = {"behaviour.runs", "behaviour.retries", "behaviour.timeout", "behaviour.schedule",
         "behaviour.wait_for", "behaviour.cron", "model.stateful", "errors.not_connected", "errors.input",
         "connection.idempotent", "rate_limit.input"}


def contract_clause_ids() -> set[str]:
    text = Path(inspect.getfile(contract)).read_text()
    return set(re.findall(r"\[([a-z_]+\.[a-z_]+)\]", text))


def suite_tests() -> dict[str, tuple[str, str | None]]:
    """test name -> (clause id, required capability) for every test of the suite."""
    found = {}
    for name in dir(BackendConformance):
        if not name.startswith("test_"):
            continue
        all_marks = getattr(getattr(BackendConformance, name), "pytestmark", [])
        marks = [m for m in all_marks if m.name == CLAUSE_MARK]
        assert len(marks) == 1, f"{name} must carry exactly one @clause"
        found[name] = (marks[0].args[0], marks[0].kwargs.get("requires"))
    return found


def test_contract_has_clause_ids() -> None:
    assert len(contract_clause_ids()) > 50


@pytest.mark.parametrize("clause_id", sorted(contract_clause_ids() | EXTRA))
def test_every_clause_has_a_test_named_after_it(clause_id: str) -> None:
    named = [t for t, (c, _) in suite_tests().items() if c == clause_id and clause_id.replace(".", "_") in t]
    assert named, f"no test for clause {clause_id}"


def test_every_test_names_its_clause() -> None:
    for test, (clause_id, _) in suite_tests().items():
        assert clause_id.replace(".", "_") in test, (test, clause_id)
        assert clause_id in contract_clause_ids() | EXTRA, f"{test} cites unknown clause {clause_id}"


def test_every_test_has_a_timeout() -> None:
    for name in suite_tests():
        marks = getattr(getattr(BackendConformance, name), "pytestmark", [])
        assert any(m.name == "timeout" for m in marks), name


def test_capabilities_named_are_real() -> None:
    from sheppy_core.backend import CAPABILITIES

    assert {r for _, r in suite_tests().values() if r} <= set(CAPABILITIES)

"""Proof of strength: every deliberately broken memory backend fails the suite; the real one passes.

All runs happen once, in parallel subprocesses (``pytest --pyargs sheppy_conformance
--sheppy-backend-factory sheppy_mutants:<Mutant>.build``); the tests below read their JSON reports.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _runner import CAUGHT, SuiteRun, run_suites
from sheppy_mutants import MUTANTS

REFERENCE = "reference"

MEMORY_DISAGREEMENTS: dict[str, str] = {}
"""Where the reference MemoryBackend of sheppy-core 0.1.0 disagrees with the contract's docstrings (the
docstrings win). Declared as known failures, so this test flags the day the backend is fixed."""

KNOWN = [arg for clause_id, why in MEMORY_DISAGREEMENTS.items()
         for arg in ("--sheppy-known-failure", f"{clause_id}={why}")]



@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SuiteRun]:
    # No shrinking: only detection matters here, and shrinking a long failing sequence takes a while.
    # Slowest first (a mutant whose waiters are never woken sits out every wait), so the pool overlaps it.
    order = sorted(MUTANTS, key=lambda name: name != "WaitersNeverWoken")
    # Each mutant runs the clauses of the area its bug belongs to (``pop.*`` for a ``pop.fifo`` bug): the
    # clause named must catch it, and its siblings must say what they saw; the full suite, fifty times
    # over, took half the CPU of the whole test run. The reference runs every clause.
    jobs = {name: ["--sheppy-backend-factory", f"sheppy_mutants:{name}.build", "--sheppy-no-shrink",
                   "--sheppy-clause", MUTANTS[name][1].split(".")[0] + ".*", *KNOWN]
            for name in order}
    jobs[REFERENCE] = ["--sheppy-backend", "memory://", *KNOWN]
    # Six at once, not ten: beside the rest of a parallel test run, ten made a 2-core machine so busy
    # that a clause ran into its own time limit.
    return run_suites(jobs, Path(tmp_path_factory.mktemp("mutants")), parallel=6)


@pytest.mark.timeout(400)
def test_reference_memory_backend_passes_every_clause(runs: dict[str, SuiteRun]) -> None:
    run = runs[REFERENCE]
    assert run.returncode == 0, run.output
    assert run.report["summary"]["failed"] == 0
    assert run.report["summary"]["skipped"] == 0
    outcomes = run.outcomes()
    assert {c for c, outcome in outcomes.items() if outcome == "xfail"} == set(MEMORY_DISAGREEMENTS)
    assert {o for c, o in outcomes.items() if c not in MEMORY_DISAGREEMENTS} == {"passed"}


@pytest.mark.timeout(400)
@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_mutant_is_caught(runs: dict[str, SuiteRun], mutant: str) -> None:
    run = runs[mutant]
    expected = MUTANTS[mutant][1]
    assert run.returncode == 1, f"{mutant} was not caught (exit {run.returncode}):\n{run.output[-3000:]}"
    assert run.failed, f"{mutant}: no clause failed in the report:\n{run.output[-3000:]}"
    assert expected in run.failed, f"{mutant} was caught by {run.failed}, but not by {expected}"
    CAUGHT[mutant] = run.failed


BUG_WORDS = {
    "AppendCheckThenInsert": "check-then-insert",
    "ScheduleCheckThenInsert": "check-then-insert",
    "CronCheckThenInsert": "check-then-insert",
    "WorkflowCreateUpserts": "upsert",
    "AckLeavesClaimFields": "claimed_by",
    "ShieldedClaim": "shield",
    "PollingPop": "50 ms",
    "ListOldestFirst": "oldest first",
    "CursorRepeatsLast": "repeated last record",
    "ListingKeyRestamped": "never changed by pop, store_result or cancel",
    "OldestReadyIsOldestCreated": "older task behind the head",
    "WorkersNeverExpire": "never expires",
}
"""The strictness issue's bugs 1-5 and the inspection API's: the failure the suite reports must name the
bug, not only its place."""


@pytest.mark.timeout(400)
@pytest.mark.parametrize("mutant", sorted(BUG_WORDS))
def test_the_failure_names_the_bug(runs: dict[str, SuiteRun], mutant: str) -> None:
    clause_id = MUTANTS[mutant][1]
    tests = runs[mutant].report["clauses"][clause_id]["tests"]
    reasons = [t["reason"] for t in tests if t["outcome"] == "failed"]
    assert any(BUG_WORDS[mutant] in reason for reason in reasons), (mutant, reasons)
    assert all(".py:" not in reason.split(" at ")[0] for reason in reasons), reasons


@pytest.mark.timeout(400)
def test_no_mutant_failure_is_summed_up_as_a_bare_assertion(runs: dict[str, SuiteRun]) -> None:
    bare = {
        (name, clause_id): entry["reason"]
        for name, run in runs.items() if name != REFERENCE
        for clause_id, entry in run.report.get("clauses", {}).items()
        if entry["outcome"] == "failed"
        and ("AssertionError" in entry["reason"] or "call: assert " in entry["reason"])
    }
    assert not bare, bare

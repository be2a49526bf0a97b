"""docs/writing-a-backend.md says what it shows: its tutorial files are the real ones, each tutorial step
does what the page says when the conformance suite judges it, and its PostgreSQL snippets behave as
described on a real server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "writing-a-backend.md"
TUTORIAL = ROOT / "examples" / "backend-tutorial"
STEPS = ["step1_toy", "step2_complete", "step3_claims", "step4_blocking"]
SUITE_SECONDS = 170

INCLUDE = re.compile(r"^<!-- include: (?P<path>\S+) -->\n```python\n(?P<body>.*?)^```$", re.M | re.S)
SUITE_OUTPUT = re.compile(r"^<!-- suite: (?P<step>\w+) -->\n```text\n(?P<body>.*?)^```$", re.M | re.S)
SQL_SNIPPET = re.compile(r"^<!-- test: (?P<name>sql-[\w-]+) -->\n```sql\n(?P<body>.*?)^```$", re.M | re.S)
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed, (\d+) skipped, (\d+) xfail of (\d+) clauses$", re.M)
FAILED_LINE = re.compile(r"^([a-z_]+\.[a-z_]+)\.{2,} failed\b", re.M)


def guide_text() -> str:
    return GUIDE.read_text(encoding="utf-8")


# -- the page shows the real files -----------------------------------------------------------------


def test_every_included_block_is_the_file_it_names() -> None:
    includes = list(INCLUDE.finditer(guide_text()))
    assert includes, "no <!-- include: ... --> blocks found"
    for include in includes:
        path = ROOT / include["path"]
        assert path.is_file(), f"{include['path']} is included in the guide but does not exist"
        assert include["body"] == path.read_text(encoding="utf-8"), (
            f"the block after <!-- include: {include['path']} --> differs from the file; copy it in again"
        )


def test_every_tutorial_file_is_in_the_page() -> None:
    included = {include["path"] for include in INCLUDE.finditer(guide_text())}
    on_disk = {f"examples/backend-tutorial/{p.name}" for p in TUTORIAL.glob("*.py")}
    assert on_disk == {f"examples/backend-tutorial/{step}.py" for step in STEPS}
    assert on_disk <= included, f"not shown in the guide: {sorted(on_disk - included)}"


# -- each step, judged by the suite ----------------------------------------------------------------


@dataclass
class StepRun:
    returncode: int
    report: dict[str, Any]
    output: str

    def outcomes(self) -> dict[str, str]:
        return {c: e["outcome"] for c, e in self.report.get("clauses", {}).items()}

    def failed(self) -> set[str]:
        return {c for c, outcome in self.outcomes().items() if outcome == "failed"}


def run_step(step: str, workdir: Path) -> StepRun:
    """The command the guide shows, by factory, with an empty ini file (none of this project's settings)."""
    workdir.mkdir(parents=True)
    (workdir / "pytest.ini").write_text("[pytest]\n")
    command = [
        sys.executable, "-m", "pytest", "-c", "pytest.ini", "--rootdir", ".", "-p", "no:cacheprovider", "-q",
        "--pyargs", "sheppy_conformance", "--sheppy-backend-factory", f"{step}:build",
        "--sheppy-report", "report", "--sheppy-no-shrink",
    ]
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(TUTORIAL),
                                                                              os.environ.get("PYTHONPATH")])))
    done = subprocess.run(command, capture_output=True, text=True, timeout=SUITE_SECONDS, cwd=workdir,
                          env=environment, check=False)
    report_path = workdir / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return StepRun(done.returncode, report, done.stdout + done.stderr)


@pytest.fixture(scope="module")
def step_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, StepRun]:
    """Every step through the suite once, all at the same time: the suite mostly sleeps (leases, waits)."""
    base = tmp_path_factory.mktemp("tutorial")
    with ThreadPoolExecutor(max_workers=len(STEPS)) as pool:
        futures = {step: pool.submit(run_step, step, base / step) for step in STEPS}
        return {step: future.result() for step, future in futures.items()}


def quoted_output(step: str) -> str:
    blocks = {match["step"]: match["body"] for match in SUITE_OUTPUT.finditer(guide_text())}
    assert step in blocks, f"the guide quotes no suite output for {step} (<!-- suite: {step} -->)"
    return blocks[step]


def test_step1_stops_once_naming_the_missing_methods(step_runs: dict[str, StepRun]) -> None:
    run = step_runs["step1_toy"]
    assert run.returncode == 1, run.output
    assert run.report == {}, "the suite must stop before any clause runs"
    quoted = quoted_output("step1_toy")
    stop_line = next(line for line in quoted.splitlines() if "cannot run the suite" in line)
    assert stop_line in run.output, f"the guide quotes {stop_line!r}; the suite said:\n{run.output}"
    assert "no tests ran" in quoted and "no tests ran" in run.output


@pytest.mark.parametrize("step", STEPS[1:])
def test_the_guide_quotes_the_suite_s_verdict_on_each_step(step_runs: dict[str, StepRun], step: str) -> None:
    run = step_runs[step]
    quoted = quoted_output(step)
    summary = SUMMARY.search(quoted)
    assert summary, f"no summary line quoted for {step}"
    actual = run.report["summary"]
    assert [int(n) for n in summary.groups()] == [
        actual["passed"], actual["failed"], actual["skipped"], actual["xfail"], len(run.report["clauses"])
    ], f"the guide quotes {summary[0]!r} for {step}; the suite said {actual}:\n{run.output[-6000:]}"
    assert set(FAILED_LINE.findall(quoted)) == run.failed(), (
        f"the failed clauses the guide lists for {step} are not the ones that failed: {sorted(run.failed())}"
    )
    assert (run.returncode == 0) == (not run.failed()), run.output[-6000:]


def test_step2_fails_only_clauses_the_guide_explains(step_runs: dict[str, StepRun]) -> None:
    """Each failure of the naive step is named in the text that reads the failures."""
    failed = step_runs["step2_complete"].failed()
    assert failed, "the naive step is meant to fail"
    reading = guide_text().split("<!-- suite: step2_complete -->", 1)[1].split("<!-- include:", 1)[0]
    prose = re.sub(r"```.*?```", "", reading, flags=re.S)
    unexplained = sorted(c for c in failed if f"`{c}`" not in prose)
    assert not unexplained, f"failures of step 2 the guide does not explain: {unexplained}"


@pytest.mark.parametrize("step", ["step3_claims", "step4_blocking"])
def test_later_steps_pass_every_required_clause(step_runs: dict[str, StepRun], step: str) -> None:
    from sheppy_conformance.plugin import NO_HOOK_PREFIX

    run = step_runs[step]
    assert run.returncode == 0, run.output[-6000:]
    for clause_id, entry in run.report["clauses"].items():
        assert entry["outcome"] in ("passed", "skipped"), (clause_id, entry)
        if entry["outcome"] == "skipped":
            optional = entry["reason"].startswith(("backend does not declare capability ", NO_HOOK_PREFIX))
            assert optional, (clause_id, entry["reason"])


def test_declaring_blocking_pop_brings_its_clauses_in(step_runs: dict[str, StepRun]) -> None:
    before, after = step_runs["step3_claims"].outcomes(), step_runs["step4_blocking"].outcomes()
    newly_passed = sorted(c for c, outcome in after.items() if outcome == "passed" and before[c] == "skipped")
    assert newly_passed == ["pop.blocks_until_append", "pop.wakes_all", "pop.wakes_promptly"]
    assert step_runs["step4_blocking"].report["backend"]["capabilities"] == ["blocking_pop"]


# -- the SQL section, on PostgreSQL ----------------------------------------------------------------


def snippet(name: str) -> str:
    snippets = {match["name"]: match["body"] for match in SQL_SNIPPET.finditer(guide_text())}
    assert name in snippets, f"no <!-- test: {name} --> block in the guide"
    return snippets[name]


@pytest.fixture
async def pg_schema() -> AsyncIterator[tuple[str, Any]]:
    """A schema of this test's own, holding the guide's table, dropped afterwards."""
    asyncpg = pytest.importorskip("asyncpg")
    schema = f"guide_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="test")
    except OSError as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {exc}")
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        await admin.execute(f'SET search_path TO "{schema}"')
        await admin.execute(snippet("sql-schema"))
        yield schema, asyncpg
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


async def connect(schema: str, asyncpg: Any) -> Any:
    return await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="test",
                                 server_settings={"search_path": schema})


async def append(connection: Any, asyncpg: Any, queue: str, task_id: str) -> bool:
    """The guide's mapping: a duplicate key is False, in a savepoint so the call's transaction lives on."""
    try:
        async with connection.transaction():
            await connection.execute(snippet("sql-append"), queue, task_id, json.dumps({"id": task_id}))
    except asyncpg.UniqueViolationError:
        return False
    return True


async def claim(connection: Any, queue: str, limit: int, worker: str) -> list[str]:
    rows = await connection.fetch(snippet("sql-claim"), queue, limit, worker, 30.0)
    return [row["id"] for row in sorted(rows, key=lambda row: row["seq"])]


async def test_sql_duplicate_insert_is_refused(pg_schema: tuple[str, Any]) -> None:
    schema, asyncpg = pg_schema
    connection = await connect(schema, asyncpg)
    try:
        assert await append(connection, asyncpg, "q", "t1") is True
        assert await append(connection, asyncpg, "q", "t1") is False
        async with connection.transaction():  # one call's transaction survives the refused record
            assert await append(connection, asyncpg, "q", "t1") is False
            assert await append(connection, asyncpg, "q", "t2") is True
        assert await connection.fetchval("SELECT count(*) FROM tasks") == 2
    finally:
        await connection.close()


async def test_sql_claims_in_fifo_order_by_the_sequence(pg_schema: tuple[str, Any]) -> None:
    schema, asyncpg = pg_schema
    connection = await connect(schema, asyncpg)
    try:
        for task_id in ["c", "a", "b"]:  # ids in no sorted order: only seq gives the append order
            assert await append(connection, asyncpg, "q", task_id)
        assert await claim(connection, "q", 2, "w") == ["c", "a"]
        assert await claim(connection, "q", 5, "w") == ["b"]
        assert await claim(connection, "q", 5, "w") == []
    finally:
        await connection.close()


async def test_sql_concurrent_skip_locked_claims_get_different_rows(pg_schema: tuple[str, Any]) -> None:
    schema, asyncpg = pg_schema
    first, second = await connect(schema, asyncpg), await connect(schema, asyncpg)
    try:
        for task_id in ["t1", "t2", "t3"]:
            assert await append(first, asyncpg, "q", task_id)
        first_claim, second_claim = first.transaction(), second.transaction()
        await first_claim.start()
        await second_claim.start()
        taken_first = await claim(first, "q", 1, "w1")  # its row stays locked until COMMIT
        taken_second = await asyncio.wait_for(claim(second, "q", 1, "w2"), 5)  # skips it, never waits
        await first_claim.commit()
        await second_claim.commit()
        assert taken_first == ["t1"]
        assert taken_second == ["t2"]
        claimed_by = dict(await first.fetch("SELECT id, claimed_by FROM tasks WHERE state = 'claimed'"))
        assert claimed_by == {"t1": "w1", "t2": "w2"}
    finally:
        await first.close()
        await second.close()


async def test_sql_queue_names_compare_byte_exactly(pg_schema: tuple[str, Any]) -> None:
    schema, asyncpg = pg_schema
    connection = await connect(schema, asyncpg)
    try:
        for queue in ["a", "A", "a ", "ä"]:
            assert await append(connection, asyncpg, queue, "same-id"), queue
        assert await claim(connection, "a", 10, "w") == ["same-id"]
        still_queued = await connection.fetchval("SELECT array_agg(queue) FROM tasks WHERE state = 'queued'")
        assert sorted(still_queued) == ["A", "a ", "ä"]
    finally:
        await connection.close()


async def test_sql_a_cancelled_claim_rolls_back(pg_schema: tuple[str, Any]) -> None:
    """The rule the guide keeps prominent: let the cancellation roll the claim's transaction back."""
    schema, asyncpg = pg_schema
    connection = await connect(schema, asyncpg)
    try:
        assert await append(connection, asyncpg, "q", "t1")
        claimed = asyncio.Event()

        async def claim_then_get_cancelled() -> None:
            async with connection.transaction():
                assert await claim(connection, "q", 1, "gone")
                claimed.set()
                await asyncio.sleep(10)  # the caller is cancelled before the reply is used

        claiming = asyncio.create_task(claim_then_get_cancelled())
        await asyncio.wait_for(claimed.wait(), 10)
        claiming.cancel()
        with pytest.raises(asyncio.CancelledError):
            await claiming
        assert await connection.fetchval("SELECT state FROM tasks WHERE id = 't1'") == "queued"
    finally:
        await connection.close()

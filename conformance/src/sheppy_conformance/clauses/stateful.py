"""model.stateful: random operation sequences against the backend and :class:`QueueModel` side by side.

Hypothesis drives append / pop / acknowledge / schedule / pop_scheduled / cancel / delete_task / clear /
store_result on a small pool of task ids (so collisions are frequent), and after every step compares
every observable answer: sizes, stats, queue and schedule order, statuses and record contents. A failing
sequence is shrunk and printed as a readable program.

Time is kept out of it: leases are long, due times lie after 2100 and ``pop_scheduled`` gets explicit
``now=`` values, so a run is deterministic and a backend may not move anything on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from sheppy_conformance._clause import clause
from sheppy_conformance._env import BackendFactory
from sheppy_conformance.model import QueueModel
from sheppy_conformance.records import FAR_FUTURE, finished, ids, requeued, task_record
from sheppy_core.backend import STATS_KEYS, Backend, TaskStateError

__all__ = ["SETTINGS", "StatefulClauses", "machine_for"]

T = TypeVar("T")

POOL = [str(uuid.uuid5(uuid.NAMESPACE_OID, f"sheppy-conformance-{i}")) for i in range(4)]
WORKER = "model-worker"
LONG_LEASE = 600.0
CALL_SECONDS = 10.0

SETTINGS = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    database=None,  # stay inert: no .hypothesis directory in the adopter's project
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

task_ids = st.sampled_from(POOL)
picks = st.integers(0, 7)
OUTCOMES = ("completed", "failed", "crashed", "pending", "processing", "retrying", "scheduled")


def machine_for(factory: BackendFactory) -> type[RuleBasedStateMachine]:
    """A state machine class bound to ``factory`` (one fresh backend object and queue per example)."""

    class BackendVersusModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.backend: Backend = factory()
            self.queue = f"sheppy-conformance-model-{uuid.uuid4().hex[:12]}"
            self.model = QueueModel()
            self.tick = 0
            self.run(self.backend.connect())

        def run(self, call: Coroutine[Any, Any, T]) -> T:
            return self.loop.run_until_complete(asyncio.wait_for(call, CALL_SECONDS))

        def teardown(self) -> None:
            try:
                with contextlib.suppress(Exception):
                    self.run(self.backend.clear(self.queue))
                with contextlib.suppress(Exception):
                    self.run(self.backend.disconnect())
            finally:
                self.loop.close()

        def _pick(self, pick: int, *groups: Any) -> str:
            """An id chosen by index from ``groups`` then the whole pool: biased towards ids in an
            interesting state (claimed, finished...) so that rules meet each other's tasks."""
            candidates: list[str] = [t for group in groups for t in group] + POOL
            return candidates[pick % len(candidates)]

        def _due(self, hours: int) -> Any:
            self.tick += 1  # distinct due times: the order of equal ones is unspecified
            return FAR_FUTURE + timedelta(hours=hours, seconds=self.tick)

        @rule(picks=st.lists(task_ids, max_size=3), unique=st.booleans(), arg=st.integers(0, 9))
        def append(self, picks: list[str], unique: bool, arg: int) -> None:
            records = [task_record(arg + i, id=t) for i, t in enumerate(picks)]
            expected = self.model.append(records, unique)
            assert self.run(self.backend.append(self.queue, records, unique=unique)) == expected

        @rule(task_id=task_ids, unique=st.booleans(), hours=st.integers(1, 24), arg=st.integers(0, 9))
        def schedule(self, task_id: str, unique: bool, hours: int, arg: int) -> None:
            at = self._due(hours)
            record = task_record(arg, id=task_id)
            expected = self.model.schedule(record, at, unique)
            assert self.run(self.backend.schedule(self.queue, record, at, unique=unique)) is expected

        @rule(limit=st.integers(1, 3))
        def pop(self, limit: int) -> None:
            expected = self.model.pop(limit, WORKER)
            got = self.run(self.backend.pop(self.queue, limit=limit, worker_id=WORKER, lease=LONG_LEASE))
            assert ids(got) == expected
            for record in got:
                assert (record["status"], record["claimed_by"]) == ("processing", WORKER)
                assert record["deliveries"] == self.model.records[record["id"]]["deliveries"]

        @rule(pick=picks)
        def acknowledge(self, pick: int) -> None:
            task_id = self._pick(pick, sorted(self.model.claimed))
            expected = self.model.acknowledge(task_id)
            assert self.run(self.backend.acknowledge(self.queue, task_id)) is expected

        @rule(ids=st.lists(task_ids, max_size=3, unique=True), mine=st.booleans())
        def heartbeat(self, ids: list[str], mine: bool) -> None:
            worker = WORKER if mine else "another-worker"
            expected = [t for t in ids if t in self.model.claimed] if mine else []
            got = self.run(self.backend.heartbeat(self.queue, ids, worker_id=worker, lease=LONG_LEASE))
            assert got == expected

        @rule(hours=st.integers(0, 26))
        def pop_scheduled(self, hours: int) -> None:
            now = FAR_FUTURE + timedelta(hours=hours, seconds=30)
            expected = self.model.pop_scheduled(now)
            got = self.run(self.backend.pop_scheduled(self.queue, now=now))
            assert ids(got) == expected
            assert {r["status"] for r in got} <= {"pending"}

        @rule(pick=picks)
        def cancel(self, pick: int) -> None:
            model = self.model
            task_id = self._pick(pick, model.queued, sorted(model.scheduled), sorted(model.claimed))
            expected = self.model.cancel(task_id)
            got = self.run(self.backend.cancel(self.queue, task_id))
            assert (got is not None) is expected, f"cancel returned {got!r}"
            if got is not None:
                assert got["status"] == "cancelled" and got["finished_at"] is not None
                self.model.records[task_id]["finished_at"] = got["finished_at"]

        @rule(pick=picks)
        def delete_task(self, pick: int) -> None:
            done = sorted(t for t, r in self.model.records.items() if r.get("finished_at"))
            task_id = self._pick(pick, done)
            expected = self.model.delete_task(task_id)
            if expected is None:
                try:
                    self.run(self.backend.delete_task(self.queue, task_id))
                except TaskStateError:
                    return
                raise AssertionError("delete_task of an unfinished task did not raise TaskStateError")
            assert self.run(self.backend.delete_task(self.queue, task_id)) is expected

        @rule(roll=st.integers(0, 4))
        def clear(self, roll: int) -> None:
            # Hypothesis has no rule weights; clearing on one roll in five keeps enough state around
            # for the other rules to interact with.
            if roll:
                return
            expected = self.model.clear()
            assert self.run(self.backend.clear(self.queue)) == expected

        @rule(pick=picks, outcome=st.sampled_from(OUTCOMES), hours=st.integers(1, 24),
              result=st.integers(0, 9))
        def store_result(self, pick: int, outcome: str, hours: int, result: int) -> None:
            task_id = self._pick(pick, sorted(self.model.claimed), sorted(self.model.records))
            base = self.model.records.get(task_id) or task_record(0, id=task_id)
            if outcome in ("completed", "failed", "crashed"):
                record = finished(base, status=outcome, result=result)
            else:
                record = requeued(base, status=outcome, at=self._due(hours))
            expected = self.model.store_result(record)
            assert self.run(self.backend.store_result(self.queue, record)) is expected

        @invariant()
        def observations_match(self) -> None:
            b, q, model = self.backend, self.queue, self.model
            assert self.run(b.size(q)) == model.size(), "size"
            stats = self.run(b.get_stats(q))
            assert {k: stats[k] for k in STATS_KEYS} == model.stats(), "get_stats"
            assert ids(self.run(b.get_pending(q, 100))) == model.queued, "get_pending order"
            assert ids(self.run(b.get_scheduled(q))) == model.scheduled_order(), "get_scheduled order"
            stored = self.run(b.get_tasks(q, POOL))
            assert {t: r["status"] for t, r in stored.items()} == model.statuses(), "statuses"
            for task_id, record in stored.items():
                expected = model.records[task_id]
                for key in ("spec", "result", "deliveries"):
                    assert record.get(key) == expected.get(key), (task_id, key)
                assert (record.get("finished_at") is None) == (expected.get("finished_at") is None), task_id

    return BackendVersusModel


class StatefulClauses:
    @clause("model.stateful", timeout=150)
    def test_model_stateful(self, backend_factory: BackendFactory, request: pytest.FixtureRequest) -> None:
        chosen = SETTINGS
        if request.config.getoption("sheppy_no_shrink", False):
            chosen = settings(SETTINGS, phases=[Phase.explicit, Phase.generate])
        run_state_machine_as_test(machine_for(backend_factory), settings=chosen)

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
from sheppy_conformance.records import FAR_FUTURE, brief, finished, ids, requeued, task_record
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
            got = self.run(self.backend.append(self.queue, records, unique=unique))
            assert got == expected, (
                f"append(unique={unique}) of {len(records)} records returned {brief(got)}, the model says "
                f"{brief(expected)}; [append.unique]/[append.replace]: True per stored record, False for an "
                f"existing id with unique=True"
            )

        @rule(task_id=task_ids, unique=st.booleans(), hours=st.integers(1, 24), arg=st.integers(0, 9))
        def schedule(self, task_id: str, unique: bool, hours: int, arg: int) -> None:
            at = self._due(hours)
            record = task_record(arg, id=task_id)
            expected = self.model.schedule(record, at, unique)
            got = self.run(self.backend.schedule(self.queue, record, at, unique=unique))
            assert got is expected, (
                f"schedule(unique={unique}) of {task_id} returned {got!r}, the model says {expected!r}; "
                f"[schedule.unique]: False and no change when the id exists and unique=True, else True"
            )

        @rule(limit=st.integers(1, 3))
        def pop(self, limit: int) -> None:
            expected = self.model.pop(limit, WORKER)
            got = self.run(self.backend.pop(self.queue, limit=limit, worker_id=WORKER, lease=LONG_LEASE))
            assert ids(got) == expected, (
                f"pop(limit={limit}) returned {brief(ids(got))}, the model says {brief(expected)}; "
                f"[pop.fifo]: the oldest queued tasks, in append order, at most limit"
            )
            for record in got:
                claim = (record["status"], record["claimed_by"])
                assert claim == ("processing", WORKER), (
                    f"pop returned {record['id']} with (status, claimed_by) {claim!r}, the model says "
                    f"{('processing', WORKER)!r}; [pop.claim]: stored and returned as processing, claimed by "
                    f"the worker"
                )
                want_deliveries = self.model.records[record["id"]]["deliveries"]
                assert record["deliveries"] == want_deliveries, (
                    f"pop returned {record['id']} with deliveries={record['deliveries']!r}, the model says "
                    f"{want_deliveries!r}; [pop.claim]: each claim adds one delivery"
                )

        @rule(pick=picks)
        def acknowledge(self, pick: int) -> None:
            task_id = self._pick(pick, sorted(self.model.claimed))
            expected = self.model.acknowledge(task_id)
            got = self.run(self.backend.acknowledge(self.queue, task_id))
            assert got is expected, (
                f"acknowledge({task_id}) returned {got!r}, the model says {expected!r}; "
                f"[ack.releases]/[ack.unknown]: True if the task was claimed, False if unknown or not claimed"
            )

        @rule(ids=st.lists(task_ids, max_size=3, unique=True), mine=st.booleans())
        def heartbeat(self, ids: list[str], mine: bool) -> None:
            worker = WORKER if mine else "another-worker"
            expected = [t for t in ids if t in self.model.claimed] if mine else []
            got = self.run(self.backend.heartbeat(self.queue, ids, worker_id=worker, lease=LONG_LEASE))
            assert got == expected, (
                f"heartbeat({brief(ids)}) by {worker} returned {brief(got)}, "
                f"the model says {brief(expected)}; "
                f"[lease.heartbeat_extends]/[lease.heartbeat_lost]: the ids, in input order, still claimed "
                f"by that worker; none for another worker"
            )

        @rule(hours=st.integers(0, 26))
        def pop_scheduled(self, hours: int) -> None:
            now = FAR_FUTURE + timedelta(hours=hours, seconds=30)
            expected = self.model.pop_scheduled(now)
            got = self.run(self.backend.pop_scheduled(self.queue, now=now))
            assert ids(got) == expected, (
                f"pop_scheduled(now=+{hours} h) returned {brief(ids(got))}, "
                f"the model says {brief(expected)}; [schedule.due_moved]: every task due by now, in due order"
            )
            statuses = {r["status"] for r in got}
            assert statuses <= {"pending"}, (
                f"pop_scheduled returned records with statuses {brief(sorted(statuses))}, the model says "
                f"['pending']; [schedule.due_moved]: each moved record is stored with status 'pending'"
            )

        @rule(pick=picks)
        def cancel(self, pick: int) -> None:
            model = self.model
            task_id = self._pick(pick, model.queued, sorted(model.scheduled), sorted(model.claimed))
            status_before = model.records[task_id]["status"] if task_id in model.records else "unknown"
            expected = self.model.cancel(task_id)
            got = self.run(self.backend.cancel(self.queue, task_id))
            got_answer = None if got is None else f"a record with status {got.get('status')!r}"
            model_answer = "the cancelled record" if expected else None
            assert (got is not None) is expected, (
                f"cancel({task_id}) of a {status_before} task returned {got_answer}, the model says "
                f"{model_answer}; [cancel.waiting]/[cancel.refused]: the cancelled record when the task was "
                f"waiting (queued or scheduled), else None\ngot {got!r}"
            )
            if got is not None:
                assert got["status"] == "cancelled" and got["finished_at"] is not None, (
                    f"cancel({task_id}) returned status {got['status']!r}, finished_at "
                    f"{got['finished_at']!r}; [cancel.waiting]: stored with status 'cancelled' and "
                    f"finished_at set"
                )
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
                raise AssertionError(
                    f"delete_task({task_id}) of an unfinished task returned normally, the model raises "
                    f"TaskStateError; [delete.unfinished]: the task is left alone and TaskStateError is "
                    f"raised"
                )
            got = self.run(self.backend.delete_task(self.queue, task_id))
            assert got is expected, (
                f"delete_task({task_id}) returned {got!r}, the model says {expected!r}; "
                f"[delete.finished]/[delete.unknown]: True if a finished record was deleted, False if unknown"
            )

        @rule(roll=st.integers(0, 4))
        def clear(self, roll: int) -> None:
            # Hypothesis has no rule weights; clearing on one roll in five keeps enough state around
            # for the other rules to interact with.
            if roll:
                return
            expected = self.model.clear()
            got = self.run(self.backend.clear(self.queue))
            assert got == expected, (
                f"clear returned {got!r}, the model says {expected!r}; [clear.count]: the number of task "
                f"records (plus crons) removed"
            )

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
            got = self.run(self.backend.store_result(self.queue, record))
            assert got is expected, (
                f"store_result({task_id}, status={outcome!r}) returned {got!r}, the model says {expected!r}; "
                f"[store_result.unknown]: True when a record with that id exists, else False and nothing "
                f"stored"
            )

        @invariant()
        def observations_match(self) -> None:
            b, q, model = self.backend, self.queue, self.model
            size = self.run(b.size(q))
            assert size == model.size(), (
                f"size returned {size!r}, the model says {model.size()}; [size.queued_only]: the number of "
                f"queued, unclaimed tasks"
            )
            stats = self.run(b.get_stats(q))
            counts = {k: stats[k] for k in STATS_KEYS}
            assert counts == model.stats(), (
                f"get_stats returned {_differing(counts, model.stats())}; [stats.counts]: the counts of the "
                f"queue's stored tasks\ngot {counts}\nmodel {model.stats()}"
            )
            pending = ids(self.run(b.get_pending(q, 100)))
            assert pending == model.queued, (
                f"get_pending returned {brief(pending)}, the model says {brief(model.queued)}; "
                f"[get_pending.peek]: the queued tasks in claim (append) order"
            )
            scheduled = ids(self.run(b.get_scheduled(q)))
            assert scheduled == model.scheduled_order(), (
                f"get_scheduled returned {brief(scheduled)}, "
                f"the model says {brief(model.scheduled_order())}; [get_scheduled.order]: the scheduled "
                f"tasks in due order"
            )
            stored = self.run(b.get_tasks(q, POOL))
            statuses = {t: r["status"] for t, r in stored.items()}
            assert statuses == model.statuses(), (
                f"get_tasks statuses are {_differing(statuses, model.statuses())}; [get_tasks.lookup]: every "
                f"stored record, with the status the contract's operations gave it"
                f"\ngot {statuses}\nmodel {model.statuses()}"
            )
            for task_id, record in stored.items():
                expected = model.records[task_id]
                # A field left out has its default: deliveries 0 (stored as 0 or not at all), result None.
                for key, default in (("spec", None), ("result", None), ("deliveries", 0)):
                    assert record.get(key, default) == expected.get(key, default), (
                        f"get_tasks record {task_id} has {key}={brief(record.get(key))}, the model says "
                        f"{brief(expected.get(key))}; [get_tasks.lookup]: the record as last stored"
                    )
                finished_at = record.get("finished_at")
                assert (finished_at is None) == (expected.get("finished_at") is None), (
                    f"get_tasks record {task_id} (status {record.get('status')!r}) has finished_at "
                    f"{finished_at!r}, the model says {'set' if expected.get('finished_at') else None}; "
                    f"[get_tasks.lookup]: finished_at is set exactly when the task is finished"
                )

    return BackendVersusModel


def _differing(got: dict[str, Any], model: dict[str, Any]) -> str:
    """The keys on which the backend and the model disagree, both answers side by side, so that the
    summary line shows the difference and not two whole dicts."""
    keys = sorted(set(got) | set(model))
    return ", ".join(f"{k}: {brief(got.get(k))} (the model says {brief(model.get(k))})"
                     for k in keys if got.get(k) != model.get(k))


class StatefulClauses:
    @clause("model.stateful", timeout=150)
    def test_model_stateful(self, backend_factory: BackendFactory, request: pytest.FixtureRequest) -> None:
        chosen = SETTINGS
        if request.config.getoption("sheppy_no_shrink", False):
            chosen = settings(SETTINGS, phases=[Phase.explicit, Phase.generate])
        run_state_machine_as_test(machine_for(backend_factory), settings=chosen)

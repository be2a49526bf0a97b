"""The operator inspection clauses: list_tasks.*, count_by_status.*, oldest_ready.*, workers.* and
change_feed.*."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from sheppy_conformance._clause import clause
from sheppy_conformance._env import Env
from sheppy_conformance.clauses.inspect import one_of_each
from sheppy_conformance.records import (
    brief,
    eventually,
    finished,
    future,
    ids,
    named,
    raises,
    requeued,
    task_record,
)
from sheppy_core.backend import (
    CHANGE_FEED,
    LISTABLE_STATUSES,
    MAX_PAGE_SIZE,
    STATS_KEYS,
    TASK_PAGES,
    WORKER_REGISTRY,
    Backend,
    BackendInputError,
    TaskPage,
    from_iso,
    quarantine_record,
    to_iso,
    utcnow,
)
from sheppy_core.models import Task, TaskSpec

__all__ = ["OperatorClauses"]

OTHER_FUNC = "sheppy_conformance.records:other"
"""A second function name, for the ``func`` filter."""

_SHORT_TTL = 0.5
"""The ttl (seconds) of the worker that ``workers.expire`` lets lapse."""

_EXPIRY_WAIT = 5.0
"""How long after registering a worker with :data:`_SHORT_TTL` it may still be listed (a loaded host)."""

_FEED_WAKE = 5.0
"""How long after a change a ``wait_for_change`` with a feed may take to return True (a loaded host)."""

_FEED_RETRY = 1.0
"""Seconds between two changes made for one waiter: a change made before the waiter has subscribed (a
LISTEN or SUBSCRIBE round trip) may go unsignalled, the next one may not."""

_FEED_TIMEOUT = 0.3
"""The timeout of the idle ``wait_for_change`` of ``change_feed.timeout``."""


def _base() -> datetime:
    """An hour ago, with microseconds: the ``created_at`` the clauses build their records around, older
    than anything stored during the test (``created_at`` = now)."""
    return (utcnow() - timedelta(hours=1)).replace(microsecond=123_456)


def _created(n: int, at: datetime, **fields: Any) -> dict[str, Any]:
    """A task record created at ``at``."""
    return task_record(n, created_at=to_iso(at), **fields)


def _of_func(n: int, func: str, at: datetime | None = None) -> dict[str, Any]:
    record = Task(spec=TaskSpec(func=func, args=(n,))).model_dump(mode="json")
    if at is not None:
        record["created_at"] = to_iso(at)
    return record


def _listing_order(records: Iterable[dict[str, Any]]) -> list[str]:
    """The ids in listing order: ``created_at`` descending, then id descending in code-point order."""
    ordered = sorted(records, key=lambda r: (from_iso(r["created_at"]), r["id"]), reverse=True)
    return [r["id"] for r in ordered]


def _show(names: list[str]) -> str:
    """A listing by name, whole when short (an order is read in full), else cut as :func:`brief`."""
    return f"[{', '.join(names)}]" if len(names) <= 12 else brief(names)


def _repeated(names: list[str]) -> list[str]:
    return sorted(name for name, n in Counter(names).items() if n > 1)


def _order_problem(got: list[str], want: list[str], names: dict[str, str]) -> str:
    """Why a listing is not in listing order, in words naming the likely bug."""
    if got == list(reversed(want)):
        return "that is oldest first (ascending); the listing is newest first"
    if _repeated(got):
        return f"{brief(named(_repeated(got), names))} listed more than once"
    if sorted(got) != sorted(want):
        return "not the records stored"
    return "out of listing order"


async def _walk(
    b: Backend, q: str, limit: int, first: TaskPage | None = None, then: Backend | None = None,
    **filters: Any,
) -> tuple[list[TaskPage], bool]:
    """Follow ``next_cursor`` from the first page (or from ``first``, already read) to the last one,
    reading the pages after the first through ``then`` when given (a cursor handed to another client);
    at most ``MAX_PAGE_SIZE`` pages, so a cursor that never ends fails instead of hanging. Returns the
    pages and whether the walk ended with ``next_cursor`` None."""
    pages = [first if first is not None else await b.list_tasks(q, limit=limit, **filters)]
    reader = then or b
    while pages[-1].next_cursor is not None and len(pages) < MAX_PAGE_SIZE:
        pages.append(await reader.list_tasks(q, limit=limit, cursor=pages[-1].next_cursor, **filters))
    return pages, pages[-1].next_cursor is None


def _listed(pages: list[TaskPage]) -> list[str]:
    return [str(r["id"]) for page in pages for r in page.records]


async def _all_listed(b: Backend, q: str, **filters: Any) -> list[str]:
    """Every id ``list_tasks`` lists with these filters, page after page."""
    pages, _ = await _walk(b, q, MAX_PAGE_SIZE, **filters)
    return _listed(pages)


def _worker(worker_id: str, queue_name: str, **fields: Any) -> dict[str, Any]:
    """A worker record as sheppy-core's worker sends it."""
    now = to_iso(utcnow())
    record: dict[str, Any] = {
        "id": worker_id, "host": "conformance-host", "pid": 4242, "queues": [queue_name], "in_flight": 0,
        "concurrency": 4, "started_at": now, "last_beat": now,
        "counters": {"completed": 0, "failed": 0, "retried": 0},
    }
    record.update(fields)
    return record


class _Workers:
    """Worker ids of one test, unique to it (the registry is shared by every queue and, on a shared store,
    by every test run against it); :meth:`forget` unregisters them all afterwards."""

    def __init__(self, b: Backend) -> None:
        self.b = b
        self.prefix = f"sheppy-conformance-{uuid.uuid4().hex[:12]}-"
        self.registered: set[str] = set()

    def id(self, label: str) -> str:
        worker_id = self.prefix + label
        self.registered.add(worker_id)
        return worker_id

    def ours(self, listed: list[dict[str, Any]]) -> list[str]:
        """Our workers among those listed, by label, in the order listed."""
        return [str(w.get("id"))[len(self.prefix):] for w in listed
                if str(w.get("id", "")).startswith(self.prefix)]

    async def forget(self) -> None:
        for worker_id in self.registered:
            with contextlib.suppress(Exception):
                await self.b.unregister_worker(worker_id)


def _after_base(got: object, base: datetime) -> str:
    """A moment a call returned, as an offset from the test's base time (``base + 600 s``)."""
    if not isinstance(got, datetime) or got.utcoffset() is None:
        return repr(got)
    return f"base + {(got - base).total_seconds():g} s"


def _close_to(got: object, want: datetime) -> bool:
    """``got`` is an aware datetime within a millisecond of ``want`` (a store may keep milliseconds)."""
    return (isinstance(got, datetime) and got.utcoffset() is not None
            and abs(got - want) <= timedelta(milliseconds=1))


async def _woken_by(
    waiter: Backend, q: str, change: Callable[[int], Awaitable[None]], rounds: int
) -> tuple[bool | None, float]:
    """Start ``waiter.wait_for_change([q])`` with a long timeout, then make ``change(i)`` through the other
    client every :data:`_FEED_RETRY` seconds (at most ``rounds`` times) until the wait returns; what it
    returned (None: still waiting :data:`_FEED_WAKE` s after the first change) and the seconds from the
    first change to its return."""
    waiting = asyncio.ensure_future(waiter.wait_for_change([q], timeout=60.0))
    try:
        await asyncio.sleep(0)  # let the wait start: a change made before the call cannot count
        first = time.monotonic()
        for i in range(rounds):
            await change(i)
            left = first + _FEED_WAKE - time.monotonic()
            if left <= 0:
                break
            done, _ = await asyncio.wait({waiting}, timeout=min(_FEED_RETRY, left))
            if done:
                return waiting.result(), time.monotonic() - first
        done, _ = await asyncio.wait({waiting}, timeout=max(0.0, first + _FEED_WAKE - time.monotonic()))
        return (waiting.result() if done else None), time.monotonic() - first
    finally:
        if not waiting.done():
            waiting.cancel()
            with contextlib.suppress(BaseException):
                await waiting


def _outcome(woke: bool | None) -> str:
    return "was still waiting (the feed never woke it)" if woke is None else f"returned {woke!r}"


class OperatorClauses:
    # -- list_tasks ------------------------------------------------------------------------------

    @clause("list_tasks.order", requires=TASK_PAGES)
    async def test_list_tasks_order(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        base, prefix = _base(), uuid.uuid4().hex
        made = {
            "newest": _created(0, base + timedelta(seconds=30)),
            "oldest": _created(1, base),
            "tie-a": _created(2, base + timedelta(seconds=10), id=f"{prefix}-a"),
            "micro-earlier": _created(3, base + timedelta(seconds=20), id=f"{prefix}-z"),
            "tie-B": _created(4, base + timedelta(seconds=10), id=f"{prefix}-B"),
            "micro-later": _created(5, base + timedelta(seconds=20, microseconds=1), id=f"{prefix}-0"),
            "tie-_": _created(6, base + timedelta(seconds=10), id=f"{prefix}-_"),
        }
        await b.append(q, list(made.values()))  # appended in this order: not the listing order
        made["scheduled"] = _created(7, base + timedelta(seconds=25))
        await b.schedule(q, made["scheduled"], future(3600))
        names = {r["id"]: name for name, r in made.items()}
        want = _listing_order(made.values())
        listed = ids((await b.list_tasks(q)).records)
        assert listed == want, (
            f"list_tasks returned {_show(named(listed, names))}: {_order_problem(listed, want, names)}; "
            f"[list_tasks.order]: newest first by created_at (to the microsecond), ties by id descending "
            f"in plain code-point order ('a' > '_' > 'B', COLLATE \"C\"): {_show(named(want, names))}"
        )
        await self._check_as_stored(b, q, names, "after append and schedule")

        claimed = await b.pop(q, limit=2, lease=30)  # newest and oldest, the first two appended
        by_id = {r["id"]: r for r in claimed}
        await b.store_result(q, finished(by_id[made["oldest"]["id"]]))
        await b.store_result(q, requeued(by_id[made["newest"]["id"]], "retrying"))
        await b.cancel(q, made["tie-a"]["id"])
        await b.pop(q, lease=30)  # micro-earlier, the next queued: claimed and left so
        (corrupt,) = await b.pop(q, lease=30)  # tie-B
        # What sheppy-core's worker stores for a claimed record that is not a task: no created_at at all.
        await b.store_result(q, quarantine_record(corrupt["id"], "{}", "not a task"))
        after = ids((await b.list_tasks(q)).records)
        assert after == want, (
            f"after a claim, an outcome, a retry, a cancel and a quarantine list_tasks returned "
            f"{_show(named(after, names))}; [list_tasks.order]: the listing key is fixed when append/"
            f"schedule stores a record and never changed by pop, store_result or cancel, nor by "
            f"quarantining (a stand-in without created_at), so the order "
            f"stays {_show(named(want, names))}"
        )
        await self._check_as_stored(b, q, names, "after a claim, outcome, retry, cancel and quarantine")

    @staticmethod
    async def _check_as_stored(b: Backend, q: str, names: dict[str, str], when: str) -> None:
        records = (await b.list_tasks(q)).records
        stored = await b.get_tasks(q, ids(records))
        differ = [names.get(r["id"], r["id"]) for r in records if stored.get(r["id"]) != r]
        assert not differ, (
            f"{when}, list_tasks returned {brief(differ)} unlike get_tasks; [list_tasks.order]: records "
            f"are returned as get_tasks would return them (status, claim fields and all)"
        )

    @clause("list_tasks.filters", requires=TASK_PAGES)
    async def test_list_tasks_filters_status_and_func(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        made = await one_of_each(env, q)
        made["retrying"] = task_record(20)
        await b.append(q, [made["retrying"]])
        queued, claimed = await b.pop(q, limit=2, lease=30)  # "queued" was appended first
        await b.store_result(q, requeued(queued))  # queued again
        await b.store_result(q, requeued(claimed, "retrying"))
        names = {r["id"]: name for name, r in made.items()}
        placed = {"pending": "queued", "processing": "claimed", "scheduled": "scheduled",
                  "completed": "completed", "failed": "failed", "cancelled": "cancelled",
                  "crashed": "crashed", "quarantined": "quarantined", "retrying": "retrying"}
        assert set(placed) == set(LISTABLE_STATUSES), (
            f"the suite knows the statuses {sorted(placed)}, the contract lists {sorted(LISTABLE_STATUSES)}; "
            f"[list_tasks.filters]: update the suite"
        )
        found = {status: named(await _all_listed(b, q, status=status), names) for status in placed}
        wrong = {status: got for status, got in found.items() if got != [placed[status]]}
        assert not wrong, (
            f"list_tasks(status=...) with one task in each status listed {brief(wrong)}; "
            f"[list_tasks.filters]: status matches the stored status exactly, so each lists its one "
            f"record (retrying and quarantined included)"
        )

        others = [_of_func(30, OTHER_FUNC), _of_func(31, OTHER_FUNC)]
        await b.append(q, others)
        names.update({others[0]["id"]: "other-1", others[1]["id"]: "other-2"})
        of_other = named(await _all_listed(b, q, func=OTHER_FUNC), names)
        assert sorted(of_other) == ["other-1", "other-2"], (
            f"list_tasks(func={OTHER_FUNC!r}) listed {brief(of_other)}; [list_tasks.filters]: func "
            f"matches spec.func exactly: the two records of that function"
        )
        of_func = sorted(named(await _all_listed(b, q, func=made["queued"]["spec"]["func"]), names))
        want = sorted(name for name in placed.values() if name != "quarantined")
        assert of_func == want, (
            f"list_tasks(func=<the other records' function>) listed {brief(of_func)}; "
            f"[list_tasks.filters]: every record of that function and no other; a quarantined stand-in "
            f"has no spec, so no func finds it"
        )
        both = named(await _all_listed(b, q, func=OTHER_FUNC, status="pending"), names)
        assert sorted(both) == ["other-1", "other-2"], (
            f"list_tasks(func=other, status='pending') listed {brief(both)}; [list_tasks.filters]: "
            f"filters combine with AND: both others are pending"
        )
        neither = named(await _all_listed(b, q, func=OTHER_FUNC, status="completed"), names)
        assert neither == [], (
            f"list_tasks(func=other, status='completed') listed {brief(neither)}; [list_tasks.filters]: "
            f"filters combine with AND: no record of that function is completed"
        )

    @clause("list_tasks.filters", requires=TASK_PAGES)
    async def test_list_tasks_filters_times(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        base = _base()
        at = [base + timedelta(seconds=s) for s in range(4)]
        made = {f"t{i}": _created(i, moment) for i, moment in enumerate(at)}
        names = {r["id"]: name for name, r in made.items()}
        await b.append(q, [made["t1"], made["t3"]])
        for record in await b.pop(q, limit=2, lease=30):
            await b.store_result(q, finished(record))
        await b.append(q, [made["t0"], made["t2"]])

        cases: list[tuple[str, dict[str, Any], list[str]]] = [
            ("since=t1, until=t3", {"since": at[1], "until": at[3]}, ["t2", "t1"]),
            ("since=t3 (inclusive)", {"since": at[3]}, ["t3"]),
            ("until=t0 (exclusive)", {"until": at[0]}, []),
            ("until=t1 + 1 µs", {"until": at[1] + timedelta(microseconds=1)}, ["t1", "t0"]),
            ("since=t1 + 1 µs", {"since": at[1] + timedelta(microseconds=1)}, ["t3", "t2"]),
            ("since=t2 given at UTC+02:00", {"since": at[2].astimezone(timezone(timedelta(hours=2)))},
             ["t3", "t2"]),
            ("status='completed', since=t2", {"status": "completed", "since": at[2]}, ["t3"]),
            ("status='pending', until=t2", {"status": "pending", "until": at[2]}, ["t0"]),
            ("status='pending', since=t1, until=t3", {"status": "pending", "since": at[1], "until": at[3]},
             ["t2"]),
        ]
        wrong = {}
        for label, filters, want in cases:
            got = named(await _all_listed(b, q, **filters), names)
            if got != want:
                wrong[label] = (want, got)
        assert not wrong, (
            f"list_tasks with time filters over records created at t0..t3 (1 s apart) listed, as "
            f"(required, listed): {brief(wrong)}; [list_tasks.filters]: since is inclusive and until "
            f"exclusive, aware times bounding created_at to the microsecond, combined with AND"
        )

    @clause("list_tasks.cursor", requires=TASK_PAGES)
    async def test_list_tasks_cursor(self, env: Env) -> None:
        q, b, limit = env.queue(), env.backend, 3
        base = _base()
        # 3 * limit + 1 records, in groups sharing a created_at that straddle the page boundaries: a cursor
        # that keeps only the time skips or repeats the rest of a group.
        groups = (2, 3, 3, 2)
        records = [_created(n, base + timedelta(seconds=g)) for g, size in enumerate(groups)
                   for n in range(size)]
        await b.append(q, records)
        want = _listing_order(records)
        names = {task_id: f"#{i}" for i, task_id in enumerate(want)}  # by place in the listing
        # The next pages through another client (SHARED_STORE): a cursor means the same place to all.
        pages, ended = await _walk(b, q, limit, then=await env.peer())
        listed = _listed(pages)
        assert ended, (
            f"following next_cursor from the first page of {len(want)} records did not end within "
            f"{MAX_PAGE_SIZE} pages; [list_tasks.cursor]: next_cursor is None on the last page"
        )
        repeated = _repeated(listed)
        assert not repeated, (
            f"walking the pages (limit={limit}) of {len(want)} records listed "
            f"{_show(named(repeated, names))} more than once; [list_tasks.cursor]: every record exactly "
            f"once, a cursor continues strictly after the last record shown, not at it (a repeated last "
            f"record)"
        )
        assert listed == want, (
            f"walking the pages (limit={limit}) listed {_show(named(listed, names))}: "
            f"{_order_problem(listed, want, names)}; [list_tasks.cursor]: each record exactly once, in "
            f"listing order #0..#{len(want) - 1} (ties by id across pages)"
        )
        sizes = [len(p.records) for p in pages]
        assert sizes == [3, 3, 3, 1], (
            f"walking {len(want)} records with limit={limit} gave pages of {sizes} records; "
            f"[list_tasks.cursor]: at most limit records a page, and next_cursor None on the last one, so "
            f"pages of [3, 3, 3, 1]"
        )
        cursors = [p.next_cursor for p in pages[:-1]]
        assert all(isinstance(c, str) and c for c in cursors), (
            f"the pages before the last had next_cursor {brief(cursors)}; [list_tasks.cursor]: an "
            f"opaque non-empty string on every page but the last"
        )

        # Change the store in the middle of a walk: records finish, one is deleted, newer ones arrive.
        for record in await b.pop(q, limit=len(records), lease=30):
            await b.store_result(q, finished(record))
        first = await b.list_tasks(q, limit=limit)
        at_cursor, unseen = want[limit - 1], want[2 * limit + 1]
        await b.delete_task(q, at_cursor)  # the record the cursor continues after
        await b.delete_task(q, unseen)
        newer = [task_record(50), task_record(51)]
        await b.append(q, newer)
        names.update({newer[0]["id"]: "newer-1", newer[1]["id"]: "newer-2"})
        pages, ended = await _walk(b, q, limit, first=first)
        listed = _listed(pages)
        remaining = [t for t in want if t != unseen]
        assert ended and listed == remaining, (
            f"a walk during which the record at the cursor and an unseen one ({names[unseen]}) were deleted "
            f"and two newer records added listed {_show(named(listed, names))}"
            f"{'' if ended else ' and did not end'}; [list_tasks.cursor]: every remaining record exactly "
            f"once, in listing order, the newer ones only on a new first page: "
            f"{_show(named(remaining, names))}"
        )

        completed = [t for t in remaining if t != at_cursor]  # 8 finished records left
        pages, ended = await _walk(b, q, 4, status="completed")
        listed = _listed(pages)
        sizes = [len(p.records) for p in pages]
        assert ended and listed == completed and sizes == [4, 4], (
            f"walking status='completed' with limit=4 over {len(completed)} completed records gave pages of "
            f"{sizes} listing {_show(named(listed, names))}; [list_tasks.cursor]: the cursor passed back "
            f"with the same filters continues after the last record, and the page holding the last "
            f"record has next_cursor None (no empty page after it)"
        )

    @clause("list_tasks.input", requires=TASK_PAGES)
    async def test_list_tasks_input(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        await b.append(q, [task_record(1)])
        naive = datetime.now()  # no timezone, on purpose
        calls: list[tuple[str, dict[str, Any], str]] = [
            ("status='running' (unknown)", {"status": "running"}, "status"),
            ("a naive since", {"since": naive}, "since"),
            ("a naive until", {"until": naive}, "until"),
            ("limit=0", {"limit": 0}, "limit"),
            (f"limit={MAX_PAGE_SIZE + 1}", {"limit": MAX_PAGE_SIZE + 1}, "limit"),
            ("limit=True", {"limit": True}, "limit"),
            ("cursor='!!!'", {"cursor": "!!!"}, "cursor"),
            ("cursor=<base64 of 'not a cursor'>", {"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
        ]
        for label, arguments, word in calls:
            why = (f"list_tasks({label}) must raise BackendInputError naming {word} [list_tasks.input]: "
                   f"check_listing refuses it")
            with raises(BackendInputError, why, match=f"(?i){word}"):
                await b.list_tasks(q, **arguments)
        for limit in (1, MAX_PAGE_SIZE):
            page = await b.list_tasks(q, limit=limit)
            assert len(page.records) == 1 and page.next_cursor is None, (
                f"list_tasks(limit={limit}) over one record returned {len(page.records)} records and "
                f"next_cursor {page.next_cursor!r}; [list_tasks.input]: limit runs from 1 to "
                f"{MAX_PAGE_SIZE} inclusive"
            )

    # -- counts and the head -------------------------------------------------------------------

    @clause("count_by_status.capped")
    async def test_count_by_status_capped(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        unknown = await b.count_by_status(env.queue("unknown"))
        assert set(STATS_KEYS) <= set(unknown) and not any(unknown.values()), (
            f"count_by_status of an unknown queue returned {brief(unknown)}; [count_by_status.capped]: "
            f"every key of {', '.join(STATS_KEYS)}, all 0"
        )
        await b.append(q, [task_record(i) for i in range(9)])
        claimed = await b.pop(q, limit=4, lease=30)
        for record, status in zip(claimed[:3], ("completed", "completed", "failed"), strict=True):
            await b.store_result(q, finished(record, status=status))
        exact = dict.fromkeys(STATS_KEYS, 0) | {"pending": 5, "processing": 1, "completed": 2, "failed": 1}
        for cap, want in (
            (10_000, exact),
            (2, exact | {"pending": 3}),
            (1, exact | {"pending": 2, "completed": 2}),
        ):
            got = await b.count_by_status(q, cap=cap)
            shown = {key: got.get(key) for key in STATS_KEYS}
            assert shown == want, (
                f"count_by_status(cap={cap}) with 5 pending, 1 processing, 2 completed and 1 failed returned "
                f"{brief({k: v for k, v in shown.items() if v != want[k]})} where it must give "
                f"{brief({k: want[k] for k, v in shown.items() if v != want[k]})}; "
                f"[count_by_status.capped]: every STATS_KEYS key, exact up to cap, cap + 1 above it"
            )
        for cap in (0, -1, True):
            why = (f"count_by_status(cap={cap!r}) must raise BackendInputError [count_by_status.capped]: "
                   f"cap < 1 (or not an integer) is refused")
            with raises(BackendInputError, why):
                await b.count_by_status(q, cap=cap)

    @clause("oldest_ready.head")
    async def test_oldest_ready_head(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        base = _base()
        empty = await b.oldest_ready_at(env.queue("empty"))
        assert empty is None, (
            f"oldest_ready_at of a queue never used returned {empty!r}; [oldest_ready.head]: None when "
            f"nothing is queued"
        )
        head, behind = _created(1, base + timedelta(seconds=10)), _created(2, base)
        await b.append(q, [head, behind])
        got = await b.oldest_ready_at(q)
        assert _close_to(got, base + timedelta(seconds=10)), (
            f"oldest_ready_at with the head created at base + 10 s and the task behind it at base returned "
            f"{_after_base(got, base)}{' (the older task behind the head)' if _close_to(got, base) else ''}; "
            f"[oldest_ready.head]: the created_at of the head, the task pop claims next"
        )
        await b.pop(q, lease=30)
        got = await b.oldest_ready_at(q)
        assert _close_to(got, base), (
            f"oldest_ready_at after the head was claimed returned {_after_base(got, base)}; "
            f"[oldest_ready.head]: claimed tasks do not count, the new head is the task behind, created at "
            f"base + 0 s"
        )
        await b.pop(q, lease=30)
        got = await b.oldest_ready_at(q)
        assert got is None, (
            f"oldest_ready_at with both tasks claimed returned {_after_base(got, base)}; "
            f"[oldest_ready.head]: claimed tasks do not count, so None"
        )

        moved = env.queue("moved")
        due = base + timedelta(minutes=30)
        await b.schedule(moved, _created(3, base), due)
        waiting = await b.oldest_ready_at(moved)
        assert waiting is None, (
            f"oldest_ready_at with one task scheduled (not yet moved) returned {_after_base(waiting, base)}; "
            f"[oldest_ready.head]: only queued tasks count, so None"
        )
        await b.pop_scheduled(moved)
        got = await b.oldest_ready_at(moved)
        assert _close_to(got, due), (
            f"oldest_ready_at after a task created at base and scheduled at base + 1800 s was moved into "
            f"the queue returned {_after_base(got, base)}"
            f"{' (its created_at)' if _close_to(got, base) else ''}; [oldest_ready.head]: it became ready "
            f"at its scheduled_at"
        )

        retried = env.queue("retried")
        retry_at = base + timedelta(minutes=40)
        await b.append(retried, [_created(4, base)])
        (claimed,) = await b.pop(retried, lease=30)
        await b.store_result(retried, requeued(claimed, "retrying", at=retry_at))
        await b.pop_scheduled(retried)
        got = await b.oldest_ready_at(retried)
        assert _close_to(got, retry_at), (
            f"oldest_ready_at after a retry due at base + 2400 s was moved into the queue returned "
            f"{_after_base(got, base)}; [oldest_ready.head]: it became ready at its next_retry_at"
        )

    # -- workers ---------------------------------------------------------------------------------

    @clause("workers.register", requires=WORKER_REGISTRY)
    async def test_workers_register(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        workers = _Workers(b)
        try:
            record = _worker(workers.id("w"), q)
            await b.register_worker(record, ttl=30)
            other = await env.peer()
            listed = [w for w in await other.list_workers() if w.get("id") == record["id"]]
            assert listed == [record], (
                f"list_workers after register_worker returned {brief(listed)} for that id; "
                f"[workers.register]: the record as stored, once, seen by every client"
            )
            beat = dict(record, in_flight=3, last_beat=to_iso(utcnow()), counters={"completed": 7})
            await b.register_worker(beat, ttl=30)
            listed = [w for w in await other.list_workers() if w.get("id") == record["id"]]
            assert listed == [beat], (
                f"list_workers after re-registering a worker with in_flight=3 returned "
                f"{brief([w.get('in_flight') for w in listed])} as in_flight of the records with that id; "
                f"[workers.register]: the new record replaces the old one: one record, in_flight 3"
            )
            bad: list[tuple[str, Any, float]] = [
                ("a worker without id", {"host": "h"}, 30),
                ("a worker whose id is 42", {"id": 42}, 30),
                ("ttl=0", _worker(workers.id("ttl0"), q), 0),
                ("ttl=-1", _worker(workers.id("ttl-1"), q), -1),
            ]
            for label, worker, ttl in bad:
                why = (f"register_worker({label}) must raise BackendInputError [workers.register]: a "
                       f"record needs a string id and ttl must be > 0")
                with raises(BackendInputError, why):
                    await b.register_worker(worker, ttl=ttl)
            left = workers.ours(await b.list_workers())
            assert left == ["w"], (
                f"after refused register_worker calls our workers listed are {brief(left)}; "
                f"[workers.register]: a refused call stores nothing"
            )
        finally:
            await workers.forget()

    @clause("workers.unregister", requires=WORKER_REGISTRY)
    async def test_workers_unregister(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        workers = _Workers(b)
        try:
            leaving, staying = workers.id("leaving"), workers.id("staying")
            for worker_id in (leaving, staying):
                await b.register_worker(_worker(worker_id, q), ttl=30)
            other = await env.peer()
            removed = await other.unregister_worker(leaving)
            assert removed is True, (
                f"unregister_worker of a registered worker returned {removed!r}; [workers.unregister]: True "
                f"when it was there and unexpired"
            )
            left = workers.ours(await b.list_workers())
            assert left == ["staying"], (
                f"list_workers after unregistering one of two workers lists ours as {brief(left)}; "
                f"[workers.unregister]: its record is deleted, the other stays"
            )
            again = await b.unregister_worker(leaving)
            assert again is False, (
                f"unregister_worker of a worker already unregistered returned {again!r}; "
                f"[workers.unregister]: False, it was not there"
            )
            unknown = await b.unregister_worker(workers.id("never-registered"))
            assert unknown is False, (
                f"unregister_worker of an id never registered returned {unknown!r}; [workers.unregister]: "
                f"False"
            )
        finally:
            await workers.forget()

    @clause("workers.alive", requires=WORKER_REGISTRY)
    async def test_workers_alive(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        workers = _Workers(b)
        try:
            for label in ("c", "a", "B", "b"):
                await b.register_worker(_worker(workers.id(label), q), ttl=30)
            listed = await b.list_workers()
            every = [str(w.get("id")) for w in listed]
            assert every == sorted(every), (
                f"list_workers returned ids out of order ({brief(every)}); [workers.alive]: sorted by id"
            )
            ours = workers.ours(listed)
            assert ours == ["B", "a", "b", "c"], (
                f"list_workers after registering workers c, a, B, b listed them as {brief(ours)}; "
                f"[workers.alive]: every live worker once, sorted by id in code-point order: B, a, b, c"
            )
            await b.append(q, [task_record(1)])
            await b.clear(q)
            after_clear = workers.ours(await b.list_workers())
            assert after_clear == ours, (
                f"list_workers after clear of the queue the workers serve lists ours as "
                f"{brief(after_clear)}; [workers.alive]: workers are not per queue, clear leaves them"
            )
        finally:
            await workers.forget()

    @clause("workers.expire", requires=WORKER_REGISTRY, timeout=20)
    async def test_workers_expire(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        workers = _Workers(b)
        try:
            started = time.monotonic()
            await b.register_worker(_worker(workers.id("killed"), q), ttl=_SHORT_TTL)
            await b.register_worker(_worker(workers.id("refreshed"), q), ttl=_SHORT_TTL)
            await b.register_worker(_worker(workers.id("refreshed"), q, in_flight=1), ttl=30)
            await b.register_worker(_worker(workers.id("long"), q), ttl=30)
            listed = workers.ours(await b.list_workers())
            if time.monotonic() - started < _SHORT_TTL * 0.8:  # a loaded host may be past the ttl already
                assert listed == ["killed", "long", "refreshed"], (
                    f"list_workers right after registering (within the ttl of {_SHORT_TTL} s) lists ours as "
                    f"{brief(listed)}; [workers.expire]: a registered worker is listed until its ttl passes"
                )

            async def killed_gone() -> bool:
                return "killed" not in workers.ours(await b.list_workers())

            gone = await eventually(killed_gone, _EXPIRY_WAIT)
            assert gone, (
                f"a worker registered with ttl={_SHORT_TTL} s and never refreshed is still listed "
                f"{_EXPIRY_WAIT} s later; [workers.expire]: a worker killed without unregistering drops out "
                f"once its ttl passes (a record that never expires)"
            )
            left = workers.ours(await b.list_workers())
            assert left == ["long", "refreshed"], (
                f"after the ttl of {_SHORT_TTL} s passed, our workers listed are {brief(left)}; "
                f"[workers.expire]: a worker re-registered with ttl=30 is refreshed and stays alive"
            )
            late = await b.unregister_worker(workers.prefix + "killed")
            assert late is False, (
                f"unregister_worker of a worker whose ttl passed returned {late!r}; [workers.expire]: False, "
                f"an expired record is no longer there"
            )
        finally:
            await workers.forget()

    # -- the change feed -----------------------------------------------------------------------

    @clause("change_feed.added", requires=CHANGE_FEED)
    async def test_change_feed_added(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        other = await env.peer()
        rounds = int(_FEED_WAKE / _FEED_RETRY)

        async def add(i: int) -> None:
            await other.append(q, [task_record(i)])

        woke, after = await _woken_by(b, q, add, rounds)
        where = "another client on the same store" if other is not b else "the same backend object"
        assert woke is True, (
            f"wait_for_change([q], timeout=60) {_outcome(woke)} {after:.1f} s after append through "
            f"{where}; [change_feed.added]: with CHANGE_FEED an append wakes the waiter (True) within about "
            f"a second"
        )

    @clause("change_feed.finished", requires=CHANGE_FEED)
    async def test_change_feed_finished(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        other = await env.peer()
        rounds = int(_FEED_WAKE / _FEED_RETRY)
        await other.append(q, [task_record(i) for i in range(rounds)])
        claimed = await other.pop(q, limit=rounds, lease=60)
        assert len(claimed) == rounds, f"pop(limit={rounds}) of {rounds} queued tasks claimed {len(claimed)}"

        async def finish(i: int) -> None:
            await other.store_result(q, finished(claimed[i]))

        woke, after = await _woken_by(b, q, finish, rounds)
        where = "another client on the same store" if other is not b else "the same backend object"
        assert woke is True, (
            f"wait_for_change([q], timeout=60) {_outcome(woke)} {after:.1f} s after store_result of a "
            f"claimed task through {where}; [change_feed.finished]: with CHANGE_FEED a finished task wakes "
            f"the waiter (True) within about a second"
        )

    @clause("change_feed.timeout")
    async def test_change_feed_timeout(self, env: Env) -> None:
        q, b = env.queue(), env.backend
        started = time.monotonic()
        got = await b.wait_for_change([q], timeout=_FEED_TIMEOUT)
        elapsed = time.monotonic() - started
        assert got is False and _FEED_TIMEOUT * 0.9 <= elapsed <= _FEED_TIMEOUT + 5, (
            f"wait_for_change([q], timeout={_FEED_TIMEOUT}) with nothing happening returned {got!r} after "
            f"{elapsed:.2f} s; [change_feed.timeout]: False once the timeout has run out, not before"
        )
        for bad in (0, -1, float("nan")):
            why = (f"wait_for_change([q], timeout={bad!r}) must raise BackendInputError "
                   f"[change_feed.timeout]: timeout must be seconds > 0")
            with raises(BackendInputError, why) as info:
                await b.wait_for_change([q], timeout=bad)
            message = str(info.value)
            assert message and "\n" not in message, (
                f"wait_for_change(timeout={bad!r}) raised {message!r}; [change_feed.timeout]: a one-line "
                f"message naming the bad timeout"
            )

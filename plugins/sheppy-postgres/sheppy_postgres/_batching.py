"""Coalescing of finished-record writes: ``store_result`` calls made by several coroutines in the same
event-loop turn go to PostgreSQL as one statement (one round trip, one commit) instead of one each.

A worker running many tasks at once finishes several of them in the same turn. Each caller still
awaits its own answer (stored or not), and each record is written exactly as the single-row statement
would write it: the batch statement is an ``UPDATE … FROM unnest(…)`` with the same ``SET`` and
``WHERE`` per row. Rules that keep per-record semantics:

* One statement per queue (the NOTIFY key and the waiter check are per queue).
* A task id appears at most once per statement (``UPDATE … FROM`` would apply only one of two rows
  for the same target): a later write of the same id goes into a following statement, in call order.
* A lone call uses the single-row statement directly.
* If a batch statement fails for any reason other than a lost connection (a deadlock with ``clear``,
  one record the server refuses), its calls are retried one by one, so one bad record never fails
  the others and every caller gets the answer (or the error) of its own record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["FinishedWrite", "ResultBatcher"]


@dataclass(frozen=True)
class FinishedWrite:
    """The arguments of one finished-record write (stored id, status, JSON, deliveries, workflow id,
    retention in seconds or None for ever)."""

    task_id: str
    status: str
    data: str
    deliveries: int | None
    workflow: str | None
    keep: float | None


SingleWriter = Callable[[str, FinishedWrite], Awaitable[bool]]
"""Writes one record of a queue; True if it was stored."""
ManyWriter = Callable[[str, list[FinishedWrite]], Awaitable[set[str]]]
"""Writes distinct records of one queue in one statement; the set of stored ids."""


@dataclass
class _Call:
    queue: str
    write: FinishedWrite
    future: asyncio.Future[bool]


class ResultBatcher:
    """Collects finished-record writes until the running callbacks of this loop turn are done, then
    sends them together (see the module docstring)."""

    def __init__(self, single: SingleWriter, many: ManyWriter, *, is_connection_problem: Callable[
            [BaseException], bool]) -> None:
        self._single = single
        self._many = many
        self._is_connection_problem = is_connection_problem
        self._pending: list[_Call] = []
        self._flushing: set[asyncio.Task[None]] = set()

    async def store(self, queue: str, write: FinishedWrite) -> bool:
        """Queue one write and wait for its own answer."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._pending.append(_Call(queue, write, future))
        if len(self._pending) == 1:
            # call_soon runs after every callback already scheduled: the other coroutines woken in
            # this turn get to add their writes first.
            loop.call_soon(self._start_flush)
        return await future

    def _start_flush(self) -> None:
        calls, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._flush(calls))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush(self, calls: list[_Call]) -> None:
        by_queue: dict[str, list[_Call]] = {}
        for call in calls:
            by_queue.setdefault(call.queue, []).append(call)
        await asyncio.gather(*(self._flush_queue(q, group) for q, group in by_queue.items()))

    async def _flush_queue(self, queue: str, calls: list[_Call]) -> None:
        # Rounds of distinct ids, in call order: the n-th write of an id goes into round n.
        rounds: list[list[_Call]] = []
        seen: dict[str, int] = {}
        for call in calls:
            index = seen.get(call.write.task_id, 0)
            seen[call.write.task_id] = index + 1
            if index == len(rounds):
                rounds.append([])
            rounds[index].append(call)
        for batch in rounds:
            await self._run(queue, batch)

    async def _run(self, queue: str, calls: list[_Call]) -> None:
        try:
            if len(calls) == 1:
                _resolve(calls[0], await self._single(queue, calls[0].write))
                return
            try:
                stored = await self._many(queue, [c.write for c in calls])
            except Exception as exc:
                if self._is_connection_problem(exc):
                    raise
                for call in calls:  # one by one: each caller gets its own record's outcome
                    try:
                        _resolve(call, await self._single(queue, call.write))
                    except Exception as single_exc:
                        _fail(call, single_exc)
                return
            for call in calls:
                _resolve(call, call.write.task_id in stored)
        except BaseException as exc:
            for call in calls:
                _fail(call, exc)
            if not isinstance(exc, Exception):
                raise

    async def close(self) -> None:
        """Wait for the writes already on their way."""
        while self._pending or self._flushing:
            if self._pending:
                self._start_flush()
            await asyncio.gather(*self._flushing, return_exceptions=True)


def _resolve(call: _Call, stored: bool) -> None:
    if not call.future.done():  # done: the caller was cancelled; the write ran regardless
        call.future.set_result(stored)


def _fail(call: _Call, exc: BaseException) -> None:
    if not call.future.done():
        call.future.set_exception(exc)

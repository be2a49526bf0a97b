"""Coalescing of concurrent single-row writes into one transaction.

A worker finishing many short tasks calls ``store_result`` for each, usually several within one turn
of the event loop. Committed one by one, every call pays a commit and rewrites the same WAL pages (the
table leaf, the index leaves). :class:`Coalescer` collects the statements submitted during one loop
turn and runs them in a single transaction on the next turn; each caller still gets *its own*
statement's rows, exactly as if it had run alone (the statements are independent row updates, run in
submission order).

Failure isolation: if the shared transaction fails (it is then rolled back entirely), each statement is
run again on its own, so one caller's error never becomes another caller's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sheppy_sqlite._store import Store

__all__ = ["Coalescer"]

_Pending = list[tuple[str, dict[str, Any], "asyncio.Future[list[Any]]"]]


class Coalescer:
    """Runs the named statements submitted in one event-loop turn as one transaction.

    :param store: where the statements run.
    :param operation: the operation name used in error messages.
    :param max_batch: the most statements per transaction (bounds the time the loop or the write lock
        is held by one batch).
    """

    def __init__(self, store: Store, operation: str, max_batch: int = 64) -> None:
        self._store = store
        self._operation = operation
        self._max_batch = max_batch
        self._pending: _Pending | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, name: str, params: dict[str, Any]) -> list[Any]:
        """The rows of statement ``name``, run (with others of this turn) in one transaction.

        Cancelling the caller does not cancel the write, as with any other operation of the backend: the
        flush runs every submitted statement and skips only the hand-over to a future already cancelled
        (no shield needed, which saves a future and two callbacks per call).
        """
        loop = asyncio.get_running_loop()
        pending = self._pending
        if pending is None or self._loop is not loop or len(pending) >= self._max_batch:
            pending = self._pending = []
            self._loop = loop
            loop.call_soon(self._flush, pending)
        future: asyncio.Future[list[Any]] = loop.create_future()
        pending.append((name, params, future))
        return await future

    def _flush(self, pending: _Pending) -> None:
        if self._pending is pending:
            self._pending = None
        statements = [(name, params) for name, params, _ in pending]
        try:
            results = self._store.try_fast_many(self._operation, statements)
        except Exception:
            self._store.keep(asyncio.ensure_future(self._one_by_one(pending)))
            return
        if results is None:
            self._store.keep(asyncio.ensure_future(self._in_thread(pending)))
            return
        self._settle(pending, results)

    async def _in_thread(self, pending: _Pending) -> None:
        statements = [(name, params) for name, params, _ in pending]
        try:
            results = await self._store.rows_many(self._operation, statements)
        except Exception:
            await self._one_by_one(pending)
            return
        self._settle(pending, results)

    async def _one_by_one(self, pending: _Pending) -> None:
        try:
            for name, params, future in pending:
                try:
                    rows = await self._store.rows(self._operation, name, params)
                except Exception as exc:  # this caller's own failure
                    if not future.done():
                        future.set_exception(exc)
                else:
                    if not future.done():
                        future.set_result(rows)
        finally:
            # Interrupted (the loop shutting down): nobody may wait for ever.
            for _, _, future in pending:
                if not future.done():
                    future.cancel()

    @staticmethod
    def _settle(pending: _Pending, results: list[list[Any]]) -> None:
        for (_, _, future), rows in zip(pending, results, strict=True):
            if not future.done():
                future.set_result(rows)

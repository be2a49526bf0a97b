"""Implicit pipelining: script calls made by several coroutines in the same event-loop turn go to
Redis together, in one pipeline (one write, one round trip), instead of one round trip each.

A worker running 50 tasks at once finishes many of them in the same turn. Calls of a *mergeable*
script (one that takes a shared head argument followed by any number of per-item argument groups and
answers a string of one byte per item, like ``store_result``) for the same keys and head are merged
further into one script call: one command to pack, run and parse instead of one per item. Each item
stays atomic on its own (the merged call is atomic as a whole). Calls keep their order, except that a
merged call sits where its first item was; the callers were concurrent, so no order between them was
promised. A lone call goes out directly.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

from sheppy_redis._scripts import Script

__all__ = ["ScriptBatcher"]

MERGE_LIMIT = 200
"""Most items in one merged script call: a script blocks the server while it runs."""


@dataclass
class _Call:
    """One script call as sent: for a merged call, ``futures`` has one entry per item."""

    script: Script
    keys: list[str]
    args: list[Any]
    futures: list[asyncio.Future[Any]]
    merged: bool = False
    items: int = 1


class ScriptBatcher:
    """Collects script calls until the event loop is idle for a moment, then sends them together."""

    def __init__(self, client: Any, *, cluster: bool = False) -> None:
        self._client = client
        # redis-py refuses EVALSHA in a cluster pipeline: there the calls go out concurrently instead.
        self._cluster = cluster
        self._pending: list[_Call] = []
        # (script sha, keys, head) -> the merged call still open for more items in this turn.
        self._open: dict[tuple[str, tuple[str, ...], Any], _Call] = {}
        self._flushing: set[asyncio.Task[None]] = set()

    def run(self, script: Script, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        """Queue one script call; the returned future gets its reply (or the driver's exception)."""
        return self._queue(_Call(script, keys, args, []))

    def run_merged(
        self, script: Script, keys: list[str], head: Any, item: list[Any]
    ) -> asyncio.Future[Any]:
        """Queue one item of a mergeable script (``ARGV``: head, then item groups; reply: a string of one
        byte per item). The future gets this item's byte as an int."""
        slot = (script.sha, tuple(keys), head)
        call = self._open.get(slot)
        if call is not None and call.items < MERGE_LIMIT:
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            call.args.extend(item)
            call.futures.append(future)
            call.items += 1
            return future
        call = _Call(script, keys, [head, *item], [], merged=True)
        self._open[slot] = call
        return self._queue(call)

    def _queue(self, call: _Call) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        call.futures.append(future)
        self._pending.append(call)
        if len(self._pending) == 1:
            # call_soon runs after every callback already scheduled: the other coroutines woken in
            # this turn get to add their calls first.
            loop.call_soon(self._start_flush)
        return future

    def _start_flush(self) -> None:
        calls, self._pending = self._pending, []
        self._open.clear()
        task = asyncio.get_running_loop().create_task(self._flush(calls))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush(self, calls: list[_Call]) -> None:
        try:
            if len(calls) == 1:
                call = calls[0]
                _resolve(call, await call.script.run(self._client, call.keys, call.args))
                return
            if self._cluster:
                replies = await asyncio.gather(
                    *(c.script.run(self._client, c.keys, c.args) for c in calls), return_exceptions=True
                )
                for call, reply in zip(calls, replies, strict=True):
                    _resolve(call, reply)
                return
            pipe = self._client.pipeline(transaction=False)
            for call in calls:
                pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
            replies = await pipe.execute(raise_on_error=False)
            for call, reply in zip(calls, replies, strict=True):
                if isinstance(reply, NoScriptError):
                    # The server lost its script cache (restart, SCRIPT FLUSH): EVAL loads it again.
                    reply = await call.script.run(self._client, call.keys, call.args)
                _resolve(call, reply)
        except BaseException as exc:
            for call in calls:
                for future in call.futures:
                    if not future.done():
                        future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    async def close(self) -> None:
        """Wait for the calls already on their way (calls queued later fail on the closed client)."""
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)


def _resolve(call: _Call, reply: Any) -> None:
    if call.merged and not isinstance(reply, BaseException):
        for future, item_reply in zip(call.futures, reply, strict=True):
            _settle(future, item_reply)
        return
    for future in call.futures:
        _settle(future, reply)


def _settle(future: asyncio.Future[Any], reply: Any) -> None:
    if future.done():  # the caller was cancelled; the script ran regardless
        return
    if isinstance(reply, asyncio.CancelledError):
        future.cancel()
    elif isinstance(reply, BaseException):
        future.set_exception(reply)
    else:
        future.set_result(reply)

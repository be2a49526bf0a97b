"""Implicit pipelining: script calls made by several coroutines in the same event-loop turn go to
Redis together, in one pipeline (one write, one round trip), instead of one round trip each.

A worker running 50 tasks at once finishes many of them in the same turn; each ``store_result`` is
still its own atomic script, only the network trips are shared. Calls keep their order. A lone call
goes out directly. Used for calls whose order relative to other, non-batched calls of the same
coroutine does not matter beyond what awaiting them already guarantees (the caller awaits its result
before doing anything else).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

from sheppy_redis._scripts import Script

__all__ = ["ScriptBatcher"]


@dataclass
class _Call:
    script: Script
    keys: list[str]
    args: list[Any]
    future: asyncio.Future[Any]


class ScriptBatcher:
    """Collects script calls until the event loop is idle for a moment, then sends them together."""

    def __init__(self, client: Any, *, cluster: bool = False) -> None:
        self._client = client
        # redis-py refuses EVALSHA in a cluster pipeline: there the calls go out concurrently instead.
        self._cluster = cluster
        self._pending: list[_Call] = []
        self._flushing: set[asyncio.Task[None]] = set()

    def run(self, script: Script, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        """Queue one script call; the returned future gets its reply (or the driver's exception)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Call(script, keys, args, future))
        if len(self._pending) == 1:
            # call_soon runs after every callback already scheduled: the other coroutines woken in
            # this turn get to add their calls first.
            loop.call_soon(self._start_flush)
        return future

    def _start_flush(self) -> None:
        calls, self._pending = self._pending, []
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
                if not call.future.done():
                    call.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    async def close(self) -> None:
        """Wait for the calls already on their way (calls queued later fail on the closed client)."""
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)


def _resolve(call: _Call, reply: Any) -> None:
    if call.future.done():  # the caller was cancelled; the script ran regardless
        return
    if isinstance(reply, asyncio.CancelledError):
        call.future.cancel()
    elif isinstance(reply, BaseException):
        call.future.set_exception(reply)
    else:
        call.future.set_result(reply)

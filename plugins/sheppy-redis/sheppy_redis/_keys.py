"""Key names. Every key of one queue starts with ``<prefix>:{<tag>}:``.

``<tag>`` is the URL-safe base64 (no padding) of the queue name's UTF-8 bytes. Two reasons:

* Redis Cluster hashes only the part between the first ``{`` and the next ``}``; an encoded tag
  contains neither brace, so all keys of a queue share one slot whatever the name holds (``{``, ``}``,
  ``:``, ``*``, spaces, unicode), and Lua scripts may touch them together.
* base64 is injective and the tag is delimited by braces, so two queue names never share a key.

The global registry of queue names (``<prefix>:queues``) is the only key outside any queue's slot; it
is written alongside (inside the same script on a single node, as a separate command on a cluster).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from sheppy_core.backend import check_queue_name

__all__ = ["QueueKeys", "queue_tag"]


def queue_tag(queue_name: str) -> str:
    """The hash tag of a queue: URL-safe base64 of the name's UTF-8. A name without a UTF-8 form (a
    lone surrogate) raises ``BackendInputError``: the registry of queue names could not hold it."""
    raw = check_queue_name(queue_name).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class QueueKeys:
    """The keys of one queue (see the module docstring of :mod:`sheppy_redis._backend` for each)."""

    name: str
    base: str  # "<prefix>:{<tag>}:"; scripts derive every other key from it

    @classmethod
    def for_queue(cls, prefix: str, queue_name: str) -> QueueKeys:
        return cls(queue_name, f"{prefix}:{{{queue_tag(queue_name)}}}:")

    @property
    def ids(self) -> str:
        """SET of every task id with a record; the routing key passed as KEYS[1] to every script."""
        return self.base + "ids"

    @property
    def queued(self) -> str:
        return self.base + "q"

    @property
    def wake(self) -> str:
        return self.base + "wake"

    @property
    def scheduled(self) -> str:
        return self.base + "sched"

    @property
    def crons(self) -> str:
        return self.base + "cron"

    @property
    def workflows(self) -> str:
        return self.base + "wf"

    @property
    def done_channel(self) -> str:
        """Pub/sub channel: the id of every task that finishes (store_result, cancel), and an empty
        message per append, schedule or requeueing store_result call (for ``wait_for_change``)."""
        return self.base + "done"

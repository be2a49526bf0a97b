"""The optional abilities a backend may declare in ``Backend.capabilities``.

Everything in the ``Backend`` contract that is not listed here is required of every backend. A clause
of the conformance suite that depends on a capability is skipped with the reason "backend does not
declare capability X" when the backend lacks it; it never passes silently.
"""

from __future__ import annotations

from typing import Final

from sheppy_core.exceptions import NotSupportedError

__all__ = [
    "BLOCKING_POP",
    "CAPABILITIES",
    "CHANGE_FEED",
    "CRON",
    "RATE_LIMIT",
    "RESULT_NOTIFY",
    "SHARED_STORE",
    "TASK_PAGES",
    "TRANSACTIONAL_ENQUEUE",
    "TTL",
    "WORKER_REGISTRY",
    "WORKFLOWS",
    "check_no_connection",
    "missing_capability",
    "missing_capability_reason",
]

BLOCKING_POP: Final = "blocking_pop"
"""``pop(timeout=...)`` waits for an ``append`` instead of returning at once, and is woken by it
promptly: an idle waiter returns the task a median of at most 50 ms after an ``append`` from another
coroutine or backend object returns (``[pop.wakes_promptly]``), so a backend that polls the store must
poll every few tens of milliseconds at most.

Without it ``pop`` may return an empty list immediately whatever the timeout, and the ``Worker`` polls
with a bounded backoff (10 ms doubling to 1 s, reset whenever a task arrives)."""

RESULT_NOTIFY: Final = "result_notify"
"""``get_results(timeout=...)`` is woken by ``store_result`` rather than by polling."""

RATE_LIMIT: Final = "rate_limit"
"""``acquire_rate_limit`` enforces ``sliding_window`` and ``fixed_window`` across all clients."""

CRON: Final = "cron"
"""``add_cron``/``delete_cron``/``get_crons`` persist cron definitions."""

TTL: Final = "ttl"
"""Finished task records expire after their retention time (``config.ttl``/``config.error_ttl``)."""

WORKFLOWS: Final = "workflows"
"""The workflow storage methods are implemented, including compare-and-set ``store_workflow``."""

TRANSACTIONAL_ENQUEUE: Final = "transactional_enqueue"
"""``append``/``schedule`` accept a caller's open transaction (``connection=``), so a rollback leaves no
task behind."""

SHARED_STORE: Final = "shared_store"
"""Several backend objects (separate connections, possibly separate processes) built from the same URL
see one store. The memory backend lacks it: its store belongs to one object."""

TASK_PAGES: Final = "task_pages"
"""``list_tasks`` returns pages of a queue's records with filters and a cursor, without reading every
record: an index or sorted set per filter, so a page costs the same with 1,000 or 1,000,000 records in
the store. Without it sheppy-core (the dashboard, ``sheppy task list``) falls back to
``get_all_tasks`` and filters in memory."""

WORKER_REGISTRY: Final = "worker_registry"
"""``register_worker``/``unregister_worker``/``list_workers`` keep a record per running worker that
expires unless refreshed, so operators see which workers are alive. Without it the dashboard and
``sheppy worker list`` show workers only through the claims they hold."""

CHANGE_FEED: Final = "change_feed"
"""``wait_for_change`` is woken by the store's own notifications (LISTEN/NOTIFY, pub/sub, a commit
counter) when a task of the queues waited on is added (``append``, ``schedule``, a retry) or finished
(``store_result``, ``cancel``), from any backend object on the same store (other processes too where
``SHARED_STORE``), within about a second (``[change_feed.added]``, ``[change_feed.finished]``).

Without it ``wait_for_change`` sleeps its timeout and returns False, and callers (the dashboard's live
counts) poll."""

CAPABILITIES: Final[dict[str, str]] = {
    BLOCKING_POP: "pop() blocks until a task arrives (woken within ~50 ms) or the timeout passes",
    RESULT_NOTIFY: "get_results() is woken by store_result() instead of polling",
    RATE_LIMIT: "acquire_rate_limit() with sliding_window and fixed_window",
    CRON: "cron definitions are stored",
    TTL: "finished records expire after their retention time",
    WORKFLOWS: "workflow storage with compare-and-set",
    TRANSACTIONAL_ENQUEUE: "enqueue inside the caller's own transaction",
    SHARED_STORE: "several connections or processes share one store",
    TASK_PAGES: "list_tasks() pages with filters and a cursor, from an index",
    WORKER_REGISTRY: "workers register and refresh a record that expires",
    CHANGE_FEED: "wait_for_change() is woken by adds and finishes instead of polling",
}
"""Every known capability name, with a one-line description (shown by ``sheppy backends``)."""


def missing_capability_reason(capability: str) -> str:
    """The words the conformance suite skips a clause with: ``backend does not declare capability X``."""
    return f"backend does not declare capability {capability}"


def missing_capability(backend: object, capability: str) -> NotSupportedError:
    """The ``NotSupportedError`` for a call that needs ``capability`` of a backend that does not declare
    it, naming the backend's class: ``raise missing_capability(self, CRON)``. ``backend`` may be the
    object or its class."""
    owner = backend if isinstance(backend, type) else type(backend)
    return NotSupportedError(f"{owner.__name__} does not declare capability {capability!r}")


def check_no_connection(backend: object, connection: object) -> None:
    """For a backend without ``TRANSACTIONAL_ENQUEUE``: ``append``/``schedule`` got ``connection=``
    something other than None, a transaction it cannot join. Raises :func:`missing_capability`."""
    if connection is not None:
        raise missing_capability(backend, TRANSACTIONAL_ENQUEUE)

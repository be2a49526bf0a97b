"""Every error sheppy-core raises, under one root.

Two families live here:

* **Storage and configuration errors** (:class:`SheppyError` subclasses): raised to the *caller* of a
  ``Queue``, ``Worker`` or ``Backend`` method. :class:`BackendError` is the one a backend raises;
  its subclasses tell a lost connection (retry later) from bad input (fix the call).
* **Task outcome errors** (:class:`TaskTimeoutError`, :class:`WorkerCrashedError`, ...): recorded on a
  task's ``exception`` when an attempt ends badly, and re-raised by ``TaskException.to_exception()``.

A class docstring is the default message, so ``raise BackendConnectionError()`` still says something
useful. Messages name the backend, URL scheme or package involved.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackendConnectionError",
    "BackendError",
    "BackendInputError",
    "ConfigurationError",
    "ContractVersionError",
    "CorruptRecordError",
    "DuplicateSchemeError",
    "MiddlewareError",
    "NotSupportedError",
    "PluginError",
    "SheppyError",
    "TaskCancellationError",
    "TaskFailedError",
    "TaskNotRegisteredError",
    "TaskStateError",
    "TaskTimeoutError",
    "UnknownSchemeError",
    "WorkerCrashedError",
    "WorkflowError",
]


class SheppyError(Exception):
    """Something went wrong in sheppy-core."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*(args or (self.__doc__ or "").splitlines()[:1]))


# -- storage ---------------------------------------------------------------------------------------


class BackendError(SheppyError):
    """The backend could not carry out a storage operation."""


class BackendConnectionError(BackendError, ConnectionError):
    """The backend's server could not be reached, or the connection was lost mid-call.

    Nothing the caller did was wrong: the operation may be retried once the server is back. A backend
    raises this (never a driver's own exception) so callers can tell a dead server from bad input.
    """


class BackendInputError(BackendError, ValueError):
    """The backend was called with data it cannot accept (a malformed task record, an empty queue name).

    Retrying the same call will fail the same way: the call itself must change.
    """


class TaskStateError(BackendInputError):
    """The task is not in a state that allows this operation (e.g. deleting a task that is not finished)."""


class CorruptRecordError(BackendError):
    """A stored record cannot be read as a task; it was quarantined (moved aside, its text kept)."""

    def __init__(self, queue_name: str = "", task_id: str = "", reason: str = "") -> None:
        self.queue_name = queue_name
        self.task_id = task_id
        self.reason = reason
        if not (queue_name or task_id):
            super().__init__()
            return
        super().__init__(
            f"queue {queue_name!r}: record {task_id!r} cannot be read as a task ({reason}); it was "
            f"quarantined: see `sheppy task list --status quarantined`, `sheppy task info {task_id}`"
        )


class NotSupportedError(BackendError, NotImplementedError):
    """The backend does not declare the capability this operation needs."""


# -- configuration and plugins ---------------------------------------------------------------------


class ConfigurationError(SheppyError, ValueError):
    """A configuration value is invalid."""


class PluginError(SheppyError):
    """A backend plugin is broken or misdeclared."""


class UnknownSchemeError(ConfigurationError):
    """No installed backend serves this URL scheme."""


class DuplicateSchemeError(PluginError):
    """Two backend plugins claim the same URL scheme."""


class ContractVersionError(PluginError):
    """A backend plugin was built for a different version of the Backend contract."""


# -- task outcomes ---------------------------------------------------------------------------------


class TaskTimeoutError(SheppyError, TimeoutError):
    """The task exceeded its timeout."""


class MiddlewareError(SheppyError):
    """A middleware raised an exception."""


class WorkflowError(SheppyError):
    """A workflow yielded something it may not, or diverged on replay."""


class WorkerCrashedError(SheppyError):
    """The worker running this task stopped without finishing it (its lease expired)."""


class TaskCancellationError(SheppyError):
    """The task cannot be cancelled: it is unknown, already claimed by a worker, or already finished."""


class TaskNotRegisteredError(SheppyError):
    """The task names a function that is not a registered ``@task`` in this process; nothing was run."""


class TaskFailedError(SheppyError):
    """Stand-in for a task's original exception when that exception class cannot be rebuilt.

    ``original_type`` is ``"module:Type"``, ``message`` the original ``str(exc)`` (also this error's
    own text, as in sheppy), ``traceback`` the formatted original traceback.
    """

    def __init__(self, original_type: str = "", message: str = "", traceback: str | None = None) -> None:
        self.original_type = original_type
        self.message = message
        self.traceback = traceback
        super().__init__(*((message,) if message else ()))

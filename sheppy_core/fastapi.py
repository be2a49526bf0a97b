"""A FastAPI router over a backend: sheppy's routes and status codes (``pip install sheppy-core[fastapi]``).

::

    from fastapi import FastAPI
    from sheppy_core import MemoryBackend
    from sheppy_core.fastapi import create_router

    app = FastAPI()
    app.include_router(create_router(backend, prefix="/sheppy"))

Routes (``{queue}`` is any queue name):

==========================================  ==========================================================
``GET /queues``                             ``{name: pending count}``
``GET /{queue}/size``                       tasks waiting to be claimed
``GET /{queue}/tasks``                      every task of the queue
``GET /{queue}/tasks/pending?limit=100``    peek at the head of the queue
``GET /{queue}/tasks/scheduled``            scheduled tasks
``GET /{queue}/tasks/{task_id}``            one task; 404 if unknown
``POST /{queue}/tasks/{task_id}/retry``     ``{delay_seconds=0, force=false}``; message; 400 refused/unknown
``POST /{queue}/tasks``                     ``{func, args, kwargs}``; the created task; 400 unknown function
``POST /{queue}/tasks/schedule``            ``{func, args, kwargs, delay_seconds | at}``; the task; 400
``POST /{queue}/tasks/clear``               number of records removed
``GET /{queue}/crons``                      registered crons
``POST /{queue}/crons``                     ``{func, args, kwargs, expression}``; true; 409 if it exists
``DELETE /{queue}/crons``                   same body; message; 404 when absent
==========================================  ==========================================================

Safety: a request names a function as a string. The router looks it up in the ``@task`` registry of this
process and calls only the registered factory, which validates the arguments and builds a record; it
never imports a module or calls anything else because a request names it (sheppy's router imports and
calls whatever it is given). Import your task modules in the web app so their tasks are registered.

sheppy's router has no authentication, and neither has this one: protect it with a dependency, e.g.
``create_router(backend, dependencies=[Depends(require_admin)])`` (see ``docs/cli.md``).
"""

import asyncio
import json
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_json

from sheppy_core._queue import MAX_DELAY, Queue
from sheppy_core.backend import Backend
from sheppy_core.exceptions import ConfigurationError, SheppyError, TaskNotRegisteredError
from sheppy_core.models import Task, TaskCron, cron_expression_problem

# No `from __future__ import annotations` here: FastAPI reads the route annotations at runtime, and
# they refer to names local to create_router.
try:
    import fastapi
except ImportError:  # pragma: no cover - exercised only without the extra
    fastapi = None  # type: ignore[assignment]

__all__ = ["AddTaskRequest", "CronRequest", "RetryRequest", "ScheduleTaskRequest", "create_router"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddTaskRequest(_Body):
    """``POST /{queue}/tasks``: the registered ``@task`` name and its arguments."""

    func: str
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)


class ScheduleTaskRequest(AddTaskRequest):
    """``POST /{queue}/tasks/schedule``: run after ``delay_seconds`` or at ``at`` (naive = UTC); with
    both, ``delay_seconds`` wins (as in sheppy); with neither, the route answers 400."""

    delay_seconds: float | None = Field(
        default=None, ge=0, le=MAX_DELAY.total_seconds(), allow_inf_nan=False
    )
    at: datetime | None = None


class RetryRequest(_Body):
    """``POST /{queue}/tasks/{task_id}/retry``."""

    delay_seconds: float = Field(default=0, ge=0, le=MAX_DELAY.total_seconds(), allow_inf_nan=False)
    force: bool = False


class CronRequest(AddTaskRequest):
    """``POST`` / ``DELETE /{queue}/crons``."""

    expression: str


def _unresolved(name: str) -> str:
    """Why ``name`` is not a registered ``@task``, in sheppy's words first ("Could not import function"
    when sheppy's import or attribute lookup would fail, "did not return a Task" when it would call
    something that is not a task). Only ``sys.modules`` is consulted: nothing is imported or called."""
    module_name, sep, function_name = name.strip().partition(":")
    never = "the router never imports a module a request names: import your task modules in the web app"
    if not sep or not module_name or not function_name:
        return f"Could not import function '{name}': expected 'module:function'"
    target: Any = sys.modules.get(module_name)
    if target is None:
        return f"Could not import function '{name}': module '{module_name}' is not imported here ({never})"
    for part in function_name.split("."):
        target = getattr(target, part, None)
        if target is None:
            return f"Could not import function '{name}': {module_name!r} has no attribute {function_name!r}"
    return f"Function '{name}' did not return a Task: it is not a registered @task function (only those run)"


def _build(request: AddTaskRequest) -> Task[Any]:
    """The task a request describes, through the registry only; 400 with the reason otherwise."""
    from sheppy_core._resolve import build_task

    try:
        return build_task(request.func, request.args, request.kwargs)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        detail = f"Error creating task: invalid arguments for {request.func}: {problems}"
        raise fastapi.HTTPException(400, detail) from None
    except (TaskNotRegisteredError, ConfigurationError):
        raise fastapi.HTTPException(400, _unresolved(request.func)) from None
    except (SheppyError, ValueError, TypeError) as exc:
        raise fastapi.HTTPException(400, f"Error creating task: {exc}") from None


def _task_json(task: Task[Any]) -> dict[str, Any]:
    """A task as the router returns it: the record, plus sheppy 0.0.7's ``completed`` and ``error``
    (read-only views of ``status`` and ``exception``) for clients written against either version."""
    data = task.model_dump(mode="json")
    data.setdefault("completed", task.status == "completed")
    data.setdefault("error", str(task.exception) if task.exception is not None else None)
    return data


def _finite_errors_route() -> Any:
    """An ``APIRoute`` whose 422 responses survive refused NaN/infinite inputs.

    FastAPI's default handler echoes the refused input in its 422 body, and a NaN or infinity (which
    JSON cannot carry; Python's parser accepts them) makes rendering it fail with a 500. Only then this
    route answers the 422 itself, with such numbers written as strings; every other validation error
    goes to the application's handler as usual.
    """

    class FiniteErrorsRoute(fastapi.routing.APIRoute):
        def get_route_handler(self) -> Any:
            handler = super().get_route_handler()

            async def route_handler(request: Any) -> Any:
                try:
                    return await handler(request)
                except fastapi.exceptions.RequestValidationError as exc:
                    errors = list(exc.errors())
                    try:
                        json.dumps(fastapi.encoders.jsonable_encoder(errors), allow_nan=False)
                    except ValueError:
                        detail = json.loads(to_json(errors, inf_nan_mode="strings", fallback=str))
                        return fastapi.responses.JSONResponse(status_code=422, content={"detail": detail})
                    raise

            return route_handler

    return FiniteErrorsRoute


def create_router(
    backend: Backend | str,
    *,
    prefix: str = "",
    tags: Sequence[str] | None = None,
    **router_kwargs: Any,
) -> Any:
    """An ``APIRouter`` exposing ``backend``'s queues (a ``Backend`` or a URL); extra keyword arguments
    go to ``APIRouter`` (``dependencies=[...]`` protects every route). ImportError without FastAPI."""
    if fastapi is None:
        raise ImportError(
            "Cannot create APIRouter because FastAPI is not installed. "
            "Install it using pip install 'sheppy-core[fastapi]'"
        )
    if isinstance(backend, str):
        from sheppy_core._plugins import backend_from_url

        backend = backend_from_url(backend)
    store: Backend = backend
    lock = asyncio.Lock()

    async def connected() -> Backend:
        if not store.is_connected:
            async with lock:
                if not store.is_connected:
                    await store.connect()
        return store

    async def get_queue(queue: str) -> Queue:
        return Queue(await connected(), queue)

    QueueDep = Annotated[Queue, fastapi.Depends(get_queue)]
    router_kwargs.setdefault("route_class", _finite_errors_route())
    router = fastapi.APIRouter(
        prefix=prefix, tags=list(tags) if tags is not None else ["sheppy"], **router_kwargs
    )

    @router.get("/queues")
    async def list_queues() -> dict[str, int]:
        return await (await connected()).list_queues()

    @router.get("/{queue}/size")
    async def queue_size(q: QueueDep) -> int:
        return await q.size()

    @router.get("/{queue}/tasks")
    async def list_tasks(q: QueueDep) -> list[dict[str, Any]]:
        return [_task_json(t) for t in await q.get_all_tasks()]

    @router.get("/{queue}/tasks/pending")
    async def list_pending(
        q: QueueDep, limit: Annotated[int, fastapi.Query(ge=1, le=10000)] = 100
    ) -> list[dict[str, Any]]:
        return [_task_json(t) for t in await q.get_pending(limit)]

    @router.get("/{queue}/tasks/scheduled")
    async def list_scheduled(q: QueueDep) -> list[dict[str, Any]]:
        return [_task_json(t) for t in await q.get_scheduled()]

    @router.get("/{queue}/tasks/{task_id}")
    async def get_task(task_id: uuid.UUID, q: QueueDep) -> dict[str, Any]:
        task = await q.get_task(task_id)
        if task is None:
            raise fastapi.HTTPException(404, f"Task {task_id} not found")
        return _task_json(task)

    @router.post("/{queue}/tasks/{task_id}/retry")
    async def retry_task(task_id: uuid.UUID, q: QueueDep, retry: RetryRequest | None = None) -> str:
        request = retry or RetryRequest()
        at = timedelta(seconds=request.delay_seconds) if request.delay_seconds > 0 else None
        try:
            queued = await q.retry(task_id, at=at, force=request.force)
        except ValueError as exc:
            raise fastapi.HTTPException(400, str(exc)) from None
        if not queued:
            # 400 as sheppy answers it (its words first), although the task is unknown.
            raise fastapi.HTTPException(400, f"Failed to retry task {task_id}: not in queue {q.name!r}")
        return f"Task {task_id} queued for retry"

    @router.post("/{queue}/tasks")
    async def add_task(request: AddTaskRequest, q: QueueDep) -> dict[str, Any]:
        task = _build(request)
        if not await q.add(task):
            raise fastapi.HTTPException(500, "Failed to add task to queue")
        return _task_json(task)

    @router.post("/{queue}/tasks/schedule")
    async def schedule_task(request: ScheduleTaskRequest, q: QueueDep) -> dict[str, Any]:
        when: datetime | timedelta
        if request.delay_seconds is not None:
            when = timedelta(seconds=request.delay_seconds)
        elif request.at is not None:
            when = request.at if request.at.tzinfo is not None else request.at.replace(tzinfo=UTC)
        else:
            raise fastapi.HTTPException(400, "Either 'delay_seconds' or 'at' must be provided")
        task = _build(request)
        if not await q.schedule(task, when):
            raise fastapi.HTTPException(500, "Failed to schedule task")
        stored = await q.get_task(task)
        return _task_json(stored or task)

    @router.post("/{queue}/tasks/clear")
    async def clear_tasks(q: QueueDep) -> int:
        return await q.clear()

    @router.get("/{queue}/crons")
    async def list_crons(q: QueueDep) -> list[dict[str, Any]]:
        return [c.model_dump(mode="json") for c in await q.get_crons()]

    def cron_of(request: CronRequest) -> TaskCron:
        problem = cron_expression_problem(request.expression)
        if problem:
            raise fastapi.HTTPException(400, f"invalid cron expression {request.expression!r}: {problem}")
        task = _build(request)
        try:
            return TaskCron(expression=request.expression, spec=task.spec, config=task.config)
        except ValidationError as exc:
            raise fastapi.HTTPException(400, f"invalid cron expression {request.expression!r}") from exc

    @router.post("/{queue}/crons")
    async def add_cron(request: CronRequest, q: QueueDep) -> bool:
        cron = cron_of(request)
        stored = await q.backend.add_cron(q.name, str(cron.deterministic_id), cron.model_dump(mode="json"))
        if not stored:
            # 409, not sheppy's 500: an identical cron is the client's conflict, not a server fault.
            raise fastapi.HTTPException(409, "Failed to add cron job: an identical cron already exists")
        return True

    @router.delete("/{queue}/crons")
    async def delete_cron(request: CronRequest, q: QueueDep) -> str:
        cron = cron_of(request)
        if not await q.backend.delete_cron(q.name, str(cron.deterministic_id)):
            raise fastapi.HTTPException(404, "Cron job not found or could not be deleted")
        return "Cron job deleted"

    return router

"""The dashboard's URLs: the read-only pages, the actions (POST, CSRF-checked, permitted), SSE, metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urlencode

from pydantic import ValidationError

from sheppy_core import _inspect
from sheppy_core.backend._capabilities import CHANGE_FEED
from sheppy_core.backend._pages import LISTABLE_STATUSES
from sheppy_core.backend._records import FINISHED_STATUSES, STATS_KEYS, is_quarantined, utcnow
from sheppy_core.exceptions import NotSupportedError, SheppyError, TaskCancellationError
from sheppy_core.models import Task, TaskCron
from sheppy_core.web._app import Dashboard, PageError, fail, log
from sheppy_core.web._security import CSRF_COOKIE, csrf_matches

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

__all__ = ["routes"]

BULK_CAP: Final = 1_000
"""At most this many tasks per bulk action ("all that match" included)."""
EVENT_POLL_SECONDS: Final = 1.0
"""How often ``/events`` reads the counts again over a backend without ``CHANGE_FEED``."""
EVENT_FEED_POLL_SECONDS: Final = 5.0
"""The same over a backend with ``CHANGE_FEED``: adds and finishes are pushed, but claims and due
schedules are not, so the counts are still read again this often."""
EVENT_MIN_INTERVAL_SECONDS: Final = 0.25
"""At least this long between two reads of the counts, however many changes are signalled."""
EVENT_KEEPALIVE_SECONDS: Final = 15.0
"""A comment line is sent after this long without an event, so proxies keep the stream open."""
RETRYABLE: Final = frozenset({"failed", "crashed", "cancelled", "completed"})
CANCELLABLE: Final = frozenset({"new", "pending", "scheduled", "retrying"})
DELETABLE: Final = FINISHED_STATUSES - {"quarantined"}

_Handler = Callable[["Request"], Awaitable["Response"]]


def _queue_url(queue: str, *parts: str) -> str:
    return "/queues/" + "/".join([quote(queue, safe=""), *(quote(p, safe="") for p in parts)])


def _with_flash(url: str, message: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode({"flash": message})


def _redirect(url: str) -> Response:
    from starlette.responses import RedirectResponse

    return RedirectResponse(url, status_code=303)


def _parse_time(name: str, text: str | None) -> datetime | None:
    """An ISO time from a filter (naive means UTC); a 400 page naming the field otherwise."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        fail(400, f"bad {name} time {text!r}: use ISO 8601, e.g. 2026-01-02T03:04:05Z")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _filters(source: Any) -> dict[str, str]:
    """The task-list filters present in a query string or form, as given."""
    found = {}
    for name in ("status", "func", "since", "until"):
        value = source.get(name)
        if isinstance(value, str) and value:
            found[name] = value
    return found


def _checked_filters(filters: dict[str, str]) -> dict[str, Any]:
    status = filters.get("status")
    if status is not None and status not in LISTABLE_STATUSES:
        fail(400, f"unknown status {status!r}: use one of {', '.join(LISTABLE_STATUSES)}")
    return {
        "status": status, "func": filters.get("func"),
        "since": _parse_time("since", filters.get("since")),
        "until": _parse_time("until", filters.get("until")),
    }


def _as_task(record: dict[str, Any]) -> Task[Any] | None:
    if is_quarantined(record):
        return None
    try:
        return Task.model_validate(record)
    except ValidationError:
        return None


def _attempts(task: Task[Any]) -> list[dict[str, Any]]:
    """Every attempt that left an error, oldest first: the earlier ones, then the record's own."""
    shown: list[dict[str, Any]] = []
    for error in task.attempt_errors:
        exc = error.exception
        shown.append({
            "attempt": error.attempt, "status": error.status, "finished_at": error.finished_at,
            "worker": error.worker, "type": exc.type if exc else "", "message": exc.message if exc else "",
            "traceback": exc.traceback if exc else None,
        })
    exc = task.exception
    last = task.attempt_errors[-1] if task.attempt_errors else None
    # The engine records the attempt that ended the task in attempt_errors too: show it once.
    already_shown = last is not None and last.status == task.status and last.exception is not None and (
        last.exception.type, last.exception.message) == ((exc.type, exc.message) if exc else None)
    if exc is not None and not already_shown:
        shown.append({
            "attempt": len(task.attempt_errors) + 1 if not shown else shown[-1]["attempt"] + 1,
            "status": task.status, "finished_at": task.finished_at, "worker": task.claimed_by,
            "type": exc.type, "message": exc.message, "traceback": exc.traceback,
        })
    return shown


def _trace_link(dash: Dashboard, task: Task[Any]) -> str | None:
    parent = task.trace_context.get("traceparent")
    if dash.trace_url is None or not parent:
        return None
    parts = parent.split("-")
    if len(parts) < 3 or not parts[1]:
        return None
    return dash.trace_url.format(trace_id=parts[1], span_id=parts[2])


def _valid_actions(task: Task[Any] | None) -> set[str]:
    if task is None:
        return set()
    valid = {"clone"}
    if task.status in RETRYABLE:
        valid.add("retry")
    if task.status in CANCELLABLE:
        valid.add("cancel")
    if task.status in DELETABLE:
        valid.add("delete")
    if task.status == "scheduled" and task.workflow_id is None:
        valid.add("run_now")
    return valid


def routes(dash: Dashboard) -> list[BaseRoute]:
    from starlette.responses import PlainTextResponse, Response, StreamingResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from sheppy_core._queue import Queue

    def queue_of(name: str) -> Queue:
        return Queue(dash.backend, name, run_inline=False)

    async def checked_form(request: Request) -> Any:
        form = await request.form()
        if not csrf_matches(request.cookies.get(CSRF_COOKIE), form.get("csrf_token")):
            fail(403, "missing or wrong CSRF token: reload the page and try again")
        return form

    def logged(user: str | None, action: str, queue: str, target: str) -> None:
        log.info("user %s did %s on queue %s task %s", user or "anonymous", action, queue, target)

    async def record_of(queue: str, task_id: str) -> dict[str, Any]:
        backend = await dash.ready()
        record = (await backend.get_tasks(queue, [task_id])).get(task_id)
        if record is None:
            fail(404, f"unknown task {task_id!r} in queue {queue!r}")
        return record

    # -- pages ---------------------------------------------------------------------------------

    async def overview(request: Request) -> Response:
        backend = await dash.ready()
        names = await dash.queue_names()
        workers = await _inspect.workers(backend)
        rows = []
        chart: dict[str, Any] = {}
        for name in names:
            flow = await _inspect.throughput(backend, name)
            rows.append({
                "name": name, "url": _queue_url(name, "tasks"), "counts": await backend.count_by_status(name),
                "oldest": await _inspect.oldest_ready_age(backend, name),
                "workers": _inspect.workers_on(workers, name), "flow": flow,
            })
            chart[name] = {"minutes": flow.minutes, "done": flow.done, "failed": flow.failed}
        return dash.render(request, "overview.html", rows=rows, statuses=STATS_KEYS, chart=json.dumps(chart),
                           queue_url=_queue_url)

    async def tasks(request: Request) -> Response:
        queue = await dash.check_queue(request.path_params["queue"])
        filters = _filters(request.query_params)
        cursor = request.query_params.get("cursor") or None
        page = await _inspect.list_page(await dash.ready(), queue, cursor=cursor, **_checked_filters(filters))
        next_url = None
        if page.next_cursor is not None:
            next_url = _queue_url(queue, "tasks") + "?" + urlencode({**filters, "cursor": page.next_cursor})
        return dash.render(
            request, "tasks.html", queue=queue, records=page.records, filters=filters, next_url=next_url,
            statuses=LISTABLE_STATUSES, queue_url=_queue_url,
            can={a: dash.allowed(request, "bulk_" + a, queue) for a in ("retry", "cancel", "delete")},
        )

    async def task_detail(request: Request) -> Response:
        queue = await dash.check_queue(request.path_params["queue"])
        task_id = request.path_params["task_id"]
        record = await record_of(queue, task_id)
        task = _as_task(record)
        shown_args: Any = None
        if task is not None:
            shown_args = (dict(dash.format_args(task)) if dash.format_args is not None
                          else {"args": list(task.spec.args), "kwargs": task.spec.kwargs})
        allowed = {a for a in _valid_actions(task) if dash.allowed(request, a, queue)}
        return dash.render(
            request, "task.html", queue=queue, task_id=task_id, record=record, task=task, args=shown_args,
            attempts=_attempts(task) if task is not None else [], trace_link=_trace_link(dash, task)
            if task is not None else None, actions=allowed, queue_url=_queue_url,
            clone_args=json.dumps(list(task.spec.args)) if task else "[]",
            clone_kwargs=json.dumps(task.spec.kwargs) if task else "{}",
        )

    async def failures(request: Request) -> Response:
        queue = await dash.check_queue(request.path_params["queue"])
        groups = await _inspect.failure_groups(await dash.ready(), queue)
        return dash.render(request, "failures.html", queue=queue, groups=groups, queue_url=_queue_url,
                           can_retry=dash.allowed(request, "retry_group", queue),
                           scan_cap=_inspect.FAILURE_SCAN_CAP)

    async def workers_page(request: Request) -> Response:
        rows = await _inspect.workers(await dash.ready())
        return dash.render(request, "workers.html", workers=rows)

    async def crons(request: Request) -> Response:
        queue = await dash.check_queue(request.path_params["queue"])
        rows: list[dict[str, Any]] = []
        problem = None
        try:
            stored = await (await dash.ready()).get_crons(queue)
        except NotSupportedError as exc:
            stored, problem = [], str(exc)
        now = utcnow()
        for raw in stored:
            try:
                cron = TaskCron.model_validate(raw)
                rows.append({"id": str(cron.deterministic_id), "cron": cron, "next": cron.next_run(now),
                             "last": cron.previous_run(now)})
            except (ValidationError, ValueError):
                continue
        return dash.render(request, "crons.html", queue=queue, rows=rows, problem=problem,
                           queue_url=_queue_url,
                           can_trigger=dash.allowed(request, "cron_trigger", queue),
                           can_delete=dash.allowed(request, "cron_delete", queue))

    async def workflows(request: Request) -> Response:
        from sheppy_core._workflow.model import Workflow

        queue = await dash.check_queue(request.path_params["queue"])
        problem = None
        try:
            stored = await (await dash.ready()).get_all_workflows(queue)
        except NotSupportedError as exc:
            stored, problem = [], str(exc)
        rows = []
        for raw in stored:
            try:
                rows.append(Workflow.model_validate(raw))
            except ValidationError:
                continue
        rows.sort(key=lambda wf: wf.created_at, reverse=True)
        return dash.render(request, "workflows.html", queue=queue, rows=rows, problem=problem,
                           queue_url=_queue_url)

    async def workflow_detail(request: Request) -> Response:
        from sheppy_core._workflow.model import Workflow, step_rows
        from sheppy_core.web._graph import Step, layout

        queue = await dash.check_queue(request.path_params["queue"])
        workflow_id = request.path_params["workflow_id"]
        try:
            found = await (await dash.ready()).get_workflows(queue, [workflow_id])
        except NotSupportedError as exc:
            fail(404, str(exc))
        raw = found.get(workflow_id)
        if raw is None:
            fail(404, f"unknown workflow {workflow_id!r} in queue {queue!r}")
        wf = Workflow.model_validate(raw)
        # What each step calls is in its signature ("module:function#digest"), so steps that have not
        # run yet are named too.
        called = dict(zip(wf.task_order, (s.partition("#")[0] for s in wf.step_signatures), strict=False))
        rows = []
        for row in step_rows(wf):
            steps = []
            for step_id in row:
                done = wf.processed_tasks.get(step_id)
                state = done.status if done is not None else ("pending" if step_id in wf.pending_task_ids
                                                              else "waiting")
                steps.append(Step(step_id, state, done.spec.func if done else called.get(step_id, "")))
            rows.append(steps)
        return dash.render(request, "workflow.html", queue=queue, wf=wf, graph=layout(rows),
                           queue_url=_queue_url)

    # -- actions -------------------------------------------------------------------------------

    async def task_action(request: Request) -> Response:
        queue = await dash.check_queue(request.path_params["queue"])
        task_id = request.path_params["task_id"]
        verb = request.path_params["action"]
        action = verb.replace("-", "_")
        if action not in ("retry", "cancel", "delete", "run_now"):
            fail(404, f"unknown action {verb!r}: use retry, cancel, delete, run-now or clone")
        await checked_form(request)
        user = dash.require(request, action, queue)
        record = await record_of(queue, task_id)
        task = _as_task(record)
        if action not in _valid_actions(task):
            state = record.get("status", "unknown")
            fail(409, f"cannot {verb} task {task_id}: it is {state}")
        assert task is not None
        q = queue_of(queue)
        back = _queue_url(queue, "tasks", task_id)
        try:
            if action == "retry":
                await q.retry(task.id, force=task.status == "completed")
                message = f"task {task_id} queued for retry"
            elif action == "cancel":
                await q.cancel(task.id)
                message = f"task {task_id} cancelled"
            elif action == "delete":
                await q.delete(task.id)
                back, message = _queue_url(queue, "tasks"), f"task {task_id} deleted"
            else:
                await q.cancel(task.id)
                fresh: Task[Any] = Task(spec=task.spec, config=task.config, cron_id=task.cron_id)
                await q.add(fresh)
                back = _queue_url(queue, "tasks", str(fresh.id))
                message = f"task {task_id} runs now as {fresh.id}"
        except (ValueError, SheppyError) as exc:
            fail(409, f"cannot {verb} task {task_id}: {exc}")
        logged(user, action, queue, task_id)
        return _redirect(_with_flash(back, message))

    async def clone(request: Request) -> Response:
        from sheppy_core._resolve import build_task, resolve_task_name

        queue = await dash.check_queue(request.path_params["queue"])
        task_id = request.path_params["task_id"]
        form = await checked_form(request)
        user = dash.require(request, "clone", queue)
        task = _as_task(await record_of(queue, task_id))
        if task is None:
            fail(409, f"cannot clone {task_id}: it is not a task record")
        args = _json_field(form, "args", list, "[]")
        kwargs = _json_field(form, "kwargs", dict, "{}")
        try:
            definition = resolve_task_name(task.spec.func)
            fresh = build_task(definition.name, args, kwargs)
        except ValidationError as exc:
            fail(422, _validation_line(exc, list(definition.signature.parameters)))
        except SheppyError as exc:
            fail(422, f"cannot check the arguments of {task.spec.func}: {exc}")
        await queue_of(queue).add(fresh)
        logged(user, "clone", queue, task_id)
        back = _queue_url(queue, "tasks", str(fresh.id))
        return _redirect(_with_flash(back, f"cloned {task_id} as {fresh.id}"))

    async def bulk(request: Request) -> Response:
        queue = await dash.check_queue(request.path_params["queue"])
        verb = request.path_params["action"]
        if verb not in ("retry", "cancel", "delete"):
            fail(404, f"unknown bulk action {verb!r}: use retry, cancel or delete")
        form = await checked_form(request)
        user = dash.require(request, "bulk_" + verb, queue)
        filters = _filters(form)
        if form.get("all_matching"):
            records = await _inspect.iter_listing(await dash.ready(), queue, cap=BULK_CAP,
                                                  **_checked_filters(filters))
            ids = [str(r.get("id")) for r in records]
        else:
            ids = [str(v) for v in form.getlist("task_id")][:BULK_CAP]
        if not ids:
            fail(400, f"nothing to {verb}: select tasks or tick 'all that match'")
        done = await _apply(queue_of(queue), verb, ids)
        logged(user, "bulk_" + verb, queue, ",".join(ids[:20]) + ("..." if len(ids) > 20 else ""))
        back = _queue_url(queue, "tasks") + ("?" + urlencode(filters) if filters else "")
        return _redirect(_with_flash(back, f"{verb}: {done} of {len(ids)} tasks"))

    async def retry_group(request: Request) -> Response:
        queue = await dash.check_queue(request.path_params["queue"])
        exception = request.query_params.get("exception") or ""
        await checked_form(request)
        user = dash.require(request, "retry_group", queue)
        groups = {g.exception: g for g in await _inspect.failure_groups(await dash.ready(), queue)}
        group = groups.get(exception)
        if group is None:
            fail(404, f"no failures of type {exception!r} in queue {queue!r}")
        ids = [str(r.get("id")) for r in group.records][:BULK_CAP]
        done = await _apply(queue_of(queue), "retry", ids)
        logged(user, "retry_group", queue, f"{exception} ({done} tasks)")
        message = f"retried {done} of {len(ids)} {exception}"
        return _redirect(_with_flash(_queue_url(queue, "failures"), message))

    async def cron_action(request: Request) -> Response:
        queue = await dash.check_queue(request.path_params["queue"])
        cron_id = request.path_params["cron_id"]
        verb = request.path_params["action"]
        if verb not in ("trigger", "delete"):
            fail(404, f"unknown cron action {verb!r}: use trigger or delete")
        await checked_form(request)
        user = dash.require(request, "cron_" + verb, queue)
        backend = await dash.ready()
        found = None
        for raw in await backend.get_crons(queue):
            try:
                cron = TaskCron.model_validate(raw)
            except ValidationError:
                continue
            if str(cron.deterministic_id) == cron_id:
                found = cron
        if found is None:
            fail(404, f"unknown cron {cron_id!r} in queue {queue!r}")
        if verb == "trigger":
            fresh: Task[Any] = Task(spec=found.spec, config=found.config, cron_id=found.deterministic_id)
            await queue_of(queue).add(fresh)
            message = f"cron {found.spec.func} triggered as task {fresh.id}"
        else:
            await backend.delete_cron(queue, cron_id)
            message = f"cron {found.spec.func} ({found.expression}) deleted"
        logged(user, "cron_" + verb, queue, cron_id)
        return _redirect(_with_flash(_queue_url(queue, "crons"), message))

    # -- feeds ---------------------------------------------------------------------------------

    async def events(request: Request) -> Response:
        limit_text = request.query_params.get("max_events")
        max_events = int(limit_text) if limit_text and limit_text.isdigit() else None

        async def stream() -> AsyncIterator[str]:
            sent = 0
            last = None
            backend = await dash.ready()
            poll = dash.events_poll_seconds or (
                EVENT_FEED_POLL_SECONDS if CHANGE_FEED in backend.capabilities else EVENT_POLL_SECONDS
            )
            loop = asyncio.get_running_loop()
            spoke = loop.time()
            waiting: asyncio.Future[bool] | None = None
            try:
                while max_events is None or sent < max_events:
                    backend = await dash.ready()
                    names = await dash.queue_names()
                    # The wait starts before the read, so a change made while the counts are read still
                    # wakes it. It is bounded by the keep-alive interval, so a quiet stream still speaks.
                    waiting = asyncio.ensure_future(
                        backend.wait_for_change(names, timeout=min(poll, EVENT_KEEPALIVE_SECONDS))
                    )
                    read_at = loop.time()
                    counts = {name: await backend.count_by_status(name) for name in names}
                    text = json.dumps(counts, sort_keys=True)
                    if text != last:
                        last, spoke = text, loop.time()
                        sent += 1
                        yield f"event: counts\ndata: {text}\n\n"
                    elif loop.time() - spoke >= EVENT_KEEPALIVE_SECONDS:
                        spoke = loop.time()
                        yield ": keep-alive\n\n"
                    if max_events is not None and sent >= max_events:
                        break
                    if await request.is_disconnected():
                        break
                    changed = await waiting
                    waiting = None
                    if changed:
                        # Coalesce a burst: 10,000 adds must not mean 10,000 count queries.
                        pause = read_at + EVENT_MIN_INTERVAL_SECONDS - loop.time()
                        if pause > 0:
                            await asyncio.sleep(pause)
            finally:
                if waiting is not None:
                    waiting.cancel()  # a no-op when it is over; its outcome is marked read either way
                    waiting.add_done_callback(lambda done: done.cancelled() or done.exception())

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    async def metrics(request: Request) -> Response:
        try:
            from sheppy_core import prometheus

            await prometheus.collect_queue_metrics(await dash.ready(), await dash.queue_names())
            body, content_type = prometheus.metrics_response_body()
        except (ImportError, AttributeError, NotSupportedError) as exc:
            return PlainTextResponse(f"metrics unavailable: {exc} (pip install sheppy-core[prometheus])\n",
                                     status_code=404)
        return Response(body, media_type=content_type)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return [
        Route("/", overview),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/events", events),
        Route("/workers", workers_page),
        Route("/queues/{queue}/tasks", tasks),
        Route("/queues/{queue}/tasks/{task_id}", task_detail),
        Route("/queues/{queue}/tasks/{task_id}/clone", clone, methods=["POST"]),
        Route("/queues/{queue}/tasks/{task_id}/{action}", task_action, methods=["POST"]),
        Route("/queues/{queue}/bulk/{action}", bulk, methods=["POST"]),
        Route("/queues/{queue}/failures", failures),
        Route("/queues/{queue}/failures/retry", retry_group, methods=["POST"]),
        Route("/queues/{queue}/crons", crons),
        Route("/queues/{queue}/crons/{cron_id}/{action}", cron_action, methods=["POST"]),
        Route("/queues/{queue}/workflows", workflows),
        Route("/queues/{queue}/workflows/{workflow_id}", workflow_detail),
        Mount("/static", StaticFiles(packages=[("sheppy_core.web", "static")]), name="static"),
    ]


async def _apply(q: Any, verb: str, ids: list[str]) -> int:
    """Do ``verb`` to each task through the queue's public operations; how many it did."""
    done = 0
    for task_id in ids:
        try:
            if verb == "retry":
                current = await q.get_task(task_id)
                ok = current is not None and await q.retry(task_id, force=current.status == "completed")
            elif verb == "cancel":
                await q.cancel(task_id)
                ok = True
            else:
                ok = await q.delete(task_id)
        except (ValueError, SheppyError, TaskCancellationError):
            ok = False
        done += bool(ok)
    return done


def _json_field(form: Any, name: str, kind: type, default: str) -> Any:
    text = form.get(name)
    text = default if not isinstance(text, str) or not text.strip() else text
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PageError(422, f"field {name}: not JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(value, kind):
        raise PageError(422, f"field {name}: expected a JSON {'list' if kind is list else 'object'}")
    return value


def _validation_line(exc: ValidationError, parameters: list[str]) -> str:
    """The problems as one line, a positional argument named by its parameter (``args[0] (x)``)."""
    problems = []
    for error in exc.errors():
        parts = [str(part) for part in error["loc"]]
        head = error["loc"][0] if error["loc"] else None
        if isinstance(head, int):
            named = f" ({parameters[head]})" if 0 <= head < len(parameters) else ""
            parts[0] = f"args[{head}]{named}"
        where = ".".join(parts) or "(arguments)"
        problems.append(f"{where}: {error['msg']}")
    return f"invalid arguments for {exc.title}: " + "; ".join(problems)


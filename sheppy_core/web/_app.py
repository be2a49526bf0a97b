"""``create_dashboard``: the Starlette app, its shared state, rendering and error pages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

from sheppy_core.backend._base import Backend
from sheppy_core.backend._checks import check_seconds
from sheppy_core.exceptions import BackendInputError
from sheppy_core.models import Task
from sheppy_core.web._security import CSRF_COOKIE, USER_SCOPE_KEY, BasicAuth, new_csrf_token

if TYPE_CHECKING:
    import jinja2
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["Dashboard", "PageError", "create_dashboard"]

log: Final = logging.getLogger("sheppy.web")
_HERE: Final = Path(__file__).parent


class PageError(Exception):
    """A request the dashboard answers with an error page (``status`` 4xx) showing ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def default_user(request: Request) -> str | None:
    """The basic-auth user name ``sheppy web --auth`` checked, else None."""
    user = request.scope.get(USER_SCOPE_KEY)
    return user if isinstance(user, str) else None


@dataclass
class Dashboard:
    """What every page of one dashboard shares."""

    backend: Backend
    queues: list[str] | None
    permissions: Callable[[str | None, str, str], bool] | None
    user: Callable[[Request], str | None]
    format_args: Callable[[Task[Any]], Mapping[str, Any]] | None
    trace_url: str | None
    title: str
    env: jinja2.Environment
    #: Seconds between two recomputations of ``/events`` when no change is signalled; None: 1 s, or 5 s
    #: when the backend declares ``CHANGE_FEED`` (claims and due schedules do not signal).
    events_poll_seconds: float | None = None
    _connect_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def ready(self) -> Backend:
        """The backend, connected on first use (an app under httpx's ASGITransport has no lifespan)."""
        if not self.backend.is_connected:
            async with self._connect_lock:
                if not self.backend.is_connected:
                    await self.backend.connect()
        return self.backend

    async def queue_names(self) -> list[str]:
        if self.queues is not None:
            return list(self.queues)
        backend = await self.ready()
        return sorted(await backend.list_queues())

    async def check_queue(self, name: str) -> str:
        """``name`` if the dashboard shows that queue, else a 404 page."""
        if self.queues is not None:
            if name not in self.queues:
                raise PageError(404, f"unknown queue {name!r}: this dashboard shows {', '.join(self.queues)}")
            return name
        backend = await self.ready()
        if name not in await backend.list_queues():
            raise PageError(404, f"unknown queue {name!r}: it has no tasks on this backend")
        return name

    def allowed(self, request: Request, action: str, queue: str) -> bool:
        if self.permissions is None:
            return False
        return bool(self.permissions(self.user(request), action, queue))

    def require(self, request: Request, action: str, queue: str) -> str | None:
        """The user, when allowed to do ``action`` on ``queue``; else a 403 page."""
        if not self.allowed(request, action, queue):
            who = self.user(request)
            raise PageError(403, f"{'user ' + repr(who) if who else 'anonymous user'} may not {action} "
                                 f"on queue {queue!r} (the dashboard is read-only unless permitted)")
        return self.user(request)

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        from starlette.responses import HTMLResponse

        cookie = request.cookies.get(CSRF_COOKIE)
        fresh = not cookie
        token = cookie or new_csrf_token()
        html = self.env.get_template(template).render(
            request=request, title=self.title, csrf_token=token, flash=request.query_params.get("flash"),
            user=self.user(request), **context,
        )
        response = HTMLResponse(html, status_code=status)
        if fresh:
            response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", path="/")
        return response

    def error(self, request: Request, status: int, message: str) -> Response:
        return self.render(request, "error.html", status=status, status_code=status, message=message)


def fail(status: int, message: str) -> NoReturn:
    raise PageError(status, message)


def _environment() -> jinja2.Environment:
    import jinja2

    from sheppy_core.web import _format

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_HERE / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(_format.FILTERS)
    return env


def create_dashboard(
    url_or_backend: str | Backend,
    *,
    queues: Sequence[str] | None = None,
    permissions: Callable[[str | None, str, str], bool] | None = None,
    user: Callable[[Request], str | None] | None = None,
    format_args: Callable[[Task[Any]], Mapping[str, Any]] | None = None,
    trace_url: str | None = None,
    title: str = "sheppy",
    basic_auth: Mapping[str, str] | None = None,
    events_poll_seconds: float | None = None,
) -> Starlette:
    """The dashboard app over a backend (or its URL).

    :param queues: the queues shown; None: every queue ``list_queues`` reports.
    :param permissions: ``permissions(user, action, queue) -> bool`` for each action (see
        :data:`~sheppy_core.web._security.ACTIONS`); None: read-only.
    :param user: who is asking; default: the basic-auth user, else None.
    :param format_args: how the task page shows a task's arguments (default: its ``spec``).
    :param trace_url: ``"https://jaeger/trace/{trace_id}"``: the task page links the task's trace.
    :param basic_auth: ``{user: password}``: every page but ``/healthz`` asks for one of them.
    :param events_poll_seconds: how often the live counts (``/events``) are read again when the backend
        signals no change (at most 15 s apart, the keep-alive interval); None: every second, or every
        5 s when the backend has a change feed (``CHANGE_FEED``), which pushes adds and finishes as
        they happen.
    """
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware

    from sheppy_core._plugins import backend_from_url
    from sheppy_core.web._routes import routes

    backend = backend_from_url(url_or_backend) if isinstance(url_or_backend, str) else url_or_backend
    if not isinstance(backend, Backend):
        raise TypeError(f"create_dashboard() needs a Backend or a URL, got {type(backend).__name__}")
    if events_poll_seconds is not None:
        check_seconds(events_poll_seconds, "events_poll_seconds", "create_dashboard")
    dash = Dashboard(
        backend=backend, queues=None if queues is None else list(queues), permissions=permissions,
        user=user or default_user, format_args=format_args, trace_url=trace_url, title=title,
        env=_environment(), events_poll_seconds=events_poll_seconds,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        owned = not backend.is_connected
        await dash.ready()
        try:
            yield
        finally:
            if owned and backend.is_connected:
                await backend.disconnect()

    async def page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        return dash.error(request, exc.status, exc.message)

    async def input_error(request: Request, exc: Exception) -> Response:
        return dash.error(request, 400, str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = "no such page" if exc.status_code == 404 else str(exc.detail)
        return dash.error(request, exc.status_code, message)

    middleware = [Middleware(BasicAuth, credentials=dict(basic_auth))] if basic_auth else []
    app = Starlette(
        routes=routes(dash),
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={PageError: page_error, BackendInputError: input_error, HTTPException: http_error},
    )
    app.state.dashboard = dash
    return app

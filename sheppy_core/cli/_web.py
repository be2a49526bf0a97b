"""``sheppy web``: serve the operator dashboard (``pip install sheppy-core[web]``)."""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated

import typer

from sheppy_core.cli._common import QueueOption, UrlOption, console, fail, settings_from

__all__ = ["web"]

AUTH_ENV = "SHEPPY_WEB_AUTH"
LOOPBACK = "127.0.0.1"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def web(
    backend_url: UrlOption = None,
    queue: QueueOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind (loopback unless --auth).")] = LOOPBACK,
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 8000,
    auth: Annotated[
        list[str] | None,
        typer.Option("--auth", help=f"user:password for basic auth (repeatable; or ${AUTH_ENV}=u:p,u2:p2)."),
    ] = None,
    allow_actions: Annotated[
        str | None,
        typer.Option("--allow-actions", help="Users who may act (retry, cancel, ...): USER,USER or *."),
    ] = None,
) -> None:
    """Serve the dashboard: queues, tasks, failures, workers, crons, workflows (read-only by default)."""
    from sheppy_core.web._security import allow_users, parse_credentials

    try:
        import uvicorn

        from sheppy_core.web import create_dashboard
    except ImportError as exc:
        fail(f"the dashboard needs its extra: pip install 'sheppy-core[web]' ({exc})")
    settings = settings_from(backend_url, None)
    entries = list(auth or [])
    if not entries and os.environ.get(AUTH_ENV):
        entries = [os.environ[AUTH_ENV]]
    try:
        credentials = parse_credentials(entries)
    except ValueError as exc:
        fail(str(exc))
    if not _loopback(host) and not credentials:
        fail(f"--host {host} is not loopback: add --auth user:password (or ${AUTH_ENV}) to serve it there")
    permissions = None
    if allow_actions:
        permissions = allow_users([u.strip() for u in allow_actions.split(",") if u.strip()])
    app = create_dashboard(
        settings.backend_url, queues=list(queue) if queue else None, permissions=permissions,
        basic_auth=credentials or None,
    )
    shown = f"[{host}]" if ":" in host else host
    console.print(f"sheppy dashboard on http://{shown}:{port}/ (Ctrl+C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")

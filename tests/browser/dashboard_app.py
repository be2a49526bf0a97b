"""The dashboard as an application would serve it: ``create_dashboard(..., permissions=...)`` behind the
application's own basic auth, with two users — ``operator`` may do everything, ``viewer`` nothing.

Served by the browser tests with ``uvicorn --factory dashboard_app:create_app``; the store and queue
come from ``SHEPPY_BROWSER_BACKEND_URL`` and ``SHEPPY_BROWSER_QUEUE`` (comma-separated names).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

USERS = {"operator": "operator-secret", "viewer": "viewer-secret"}


def authenticated_user(authorization: str | None) -> str | None:
    """The user name of a valid ``Authorization: Basic ...`` header, else None."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        name, _, password = base64.b64decode(token, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    expected = USERS.get(name)
    if expected is None or not hmac.compare_digest(password, expected):
        return None
    return name


def request_user(request: Request) -> str | None:
    return authenticated_user(request.headers.get("authorization"))


def permissions(user: str | None, action: str, queue: str) -> bool:
    """Only the operator may act; everyone else reads."""
    return user == "operator"


class RequireBasicAuth:
    """Answers 401 to any HTTP request without a known user's credentials."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            if authenticated_user(headers.get("authorization")) is None:
                response = PlainTextResponse(
                    "authentication required", status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="sheppy"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app() -> Any:
    from sheppy_core.web import create_dashboard

    dashboard = create_dashboard(
        os.environ["SHEPPY_BROWSER_BACKEND_URL"],
        queues=os.environ["SHEPPY_BROWSER_QUEUE"].split(","),
        permissions=permissions,
        user=request_user,
        title="sheppy (browser tests)",
    )
    return RequireBasicAuth(dashboard)

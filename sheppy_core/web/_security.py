"""Who is asking and what they may do: basic auth, the CSRF double-submit cookie, permissions."""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

__all__ = [
    "ACTIONS",
    "CSRF_COOKIE",
    "BasicAuth",
    "allow_users",
    "csrf_matches",
    "new_csrf_token",
    "parse_credentials",
]

CSRF_COOKIE: Final = "sheppy_csrf"
ACTIONS: Final = (
    "retry", "cancel", "delete", "run_now", "clone", "bulk_retry", "bulk_cancel", "bulk_delete",
    "retry_group", "cron_trigger", "cron_delete",
)
USER_SCOPE_KEY: Final = "sheppy_user"
"""Where :class:`BasicAuth` leaves the user name in the ASGI scope (the default ``user(request)``)."""

_Scope = dict[str, Any]
_Receive = Callable[[], Awaitable[dict[str, Any]]]
_Send = Callable[[dict[str, Any]], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[None]]


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(cookie: str | None, submitted: object) -> bool:
    """Whether a form's ``csrf_token`` equals the ``sheppy_csrf`` cookie (both present)."""
    if not cookie or not isinstance(submitted, str) or not submitted:
        return False
    return secrets.compare_digest(cookie.encode(), submitted.encode())


def parse_credentials(entries: list[str]) -> dict[str, str]:
    """``["user:password", "u2:p2,u3:p3"]`` as ``{user: password}``; ValueError naming a bad entry."""
    found: dict[str, str] = {}
    for entry in entries:
        for item in entry.split(","):
            item = item.strip()
            if not item:
                continue
            user, colon, password = item.partition(":")
            if not colon or not user or not password:
                raise ValueError(f"--auth entry {user or item!r} is not user:password")
            found[user] = password
    return found


def allow_users(users: list[str]) -> Callable[[str | None, str, str], bool]:
    """A ``permissions`` callable allowing every action to the named users (``*``: every signed-in or
    anonymous user)."""
    allowed = frozenset(users)

    def permissions(user: str | None, action: str, queue: str) -> bool:
        return "*" in allowed or (user is not None and user in allowed)

    return permissions


class BasicAuth:
    """ASGI middleware asking for HTTP basic auth with one of ``credentials``; ``/healthz`` stays open."""

    def __init__(self, app: _ASGIApp, credentials: Mapping[str, str], realm: str = "sheppy") -> None:
        self.app = app
        self.credentials = dict(credentials)
        self.realm = realm

    def _user(self, scope: _Scope) -> str | None:
        for name, value in scope.get("headers", []):
            if name.lower() != b"authorization":
                continue
            scheme, _, encoded = value.decode("latin-1").partition(" ")
            if scheme.lower() != "basic":
                return None
            try:
                user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            expected = self.credentials.get(user)
            if expected is not None and secrets.compare_digest(expected.encode(), password.encode()):
                return user
            return None
        return None

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http" or scope.get("path") == "/healthz":
            await self.app(scope, receive, send)
            return
        user = self._user(scope)
        if user is None:
            await send({
                "type": "http.response.start", "status": 401,
                "headers": [
                    (b"www-authenticate", f'Basic realm="{self.realm}"'.encode()),
                    (b"content-type", b"text/plain; charset=utf-8"),
                ],
            })
            await send({"type": "http.response.body", "body": b"authentication required\n"})
            return
        scope[USER_SCOPE_KEY] = user
        await self.app(scope, receive, send)

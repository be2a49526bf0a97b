"""The operator dashboard (``pip install sheppy-core[web]``; ``sheppy web``).

``create_dashboard(url_or_backend, ...)`` returns a Starlette app: server-rendered pages (Jinja2) with
htmx and uPlot vendored under ``static/`` (no CDN, works offline), live counts over server-sent events,
read-only unless ``permissions`` allows an action. Starlette and Jinja2 are imported only when the app
is built, so ``import sheppy_core.web`` costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sheppy_core.web._app import create_dashboard

__all__ = ["create_dashboard"]


def __getattr__(name: str) -> Any:
    if name == "create_dashboard":
        from sheppy_core.web._app import create_dashboard

        return create_dashboard
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

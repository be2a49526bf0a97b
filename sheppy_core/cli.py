"""The ``sheppy`` command line (typer + rich).

Errors an operator can fix (a bad URL, an unreachable server, an unknown task module) print one line
and exit non-zero; passwords in URLs are always redacted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sheppy_core import __version__
from sheppy_core._config import resolve_backend_url
from sheppy_core.backend import redact_url
from sheppy_core.exceptions import BackendConnectionError, SheppyError

__all__ = ["app", "main"]

app = typer.Typer(
    name="sheppy", help="Operate sheppy-core task queues.", no_args_is_help=True, add_completion=False
)
console = Console()
errors = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _version(value: bool) -> None:
    if value:
        console.print(f"sheppy-core {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    # `module:function` names given on the command line resolve against the current directory.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


QueueOption = Annotated[
    list[str] | None,
    typer.Option(
        "-q", "--queue", help="Queue name; repeat for several. Env: SHEPPY_QUEUE (comma-separated)."
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "-u", "--backend-url", help="Backend URL. Env: SHEPPY_BACKEND_URL; default sqlite:///sheppy.db."
    ),
]


def _queues(queue: list[str] | None) -> list[str]:
    if queue:
        return queue
    raw = os.environ.get("SHEPPY_QUEUE", "default")
    return [name.strip() for name in raw.split(",") if name.strip()] or ["default"]


def _env_number(name: str, default: float, minimum: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _fail(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise _fail(f"{name}={raw!r} must be >= {minimum:g}")
    return value


@app.command()
def work(
    queue: QueueOption = None,
    backend_url: UrlOption = None,
    max_concurrent: Annotated[
        int | None,
        typer.Option(
            "-c", "--max-concurrent", min=1, help="Tasks run at once. Env: SHEPPY_MAX_CONCURRENT_TASKS (10)."
        ),
    ] = None,
    max_prefetch: Annotated[int | None, typer.Option("--max-prefetch", min=1)] = None,
    oneshot: Annotated[bool, typer.Option("--oneshot", help="Exit once every queue is empty.")] = False,
    burst: Annotated[bool, typer.Option("--burst", help="Same as --oneshot.")] = False,
    max_tasks: Annotated[int | None, typer.Option("--max-tasks", min=1)] = None,
    disable_job_processing: Annotated[bool, typer.Option("--disable-job-processing")] = False,
    disable_scheduler: Annotated[bool, typer.Option("--disable-scheduler")] = False,
    disable_cron_manager: Annotated[bool, typer.Option("--disable-cron-manager")] = False,
    log_level: Annotated[
        str | None,
        typer.Option("-l", "--log-level", help="debug|info|warning|error. Env: SHEPPY_LOG_LEVEL (info)."),
    ] = None,
    shutdown_timeout: Annotated[
        float | None,
        typer.Option(
            "--shutdown-timeout",
            min=0,
            help="Seconds to finish running tasks. Env: SHEPPY_SHUTDOWN_TIMEOUT (30).",
        ),
    ] = None,
    import_: Annotated[
        list[str] | None,
        typer.Option(
            "--import",
            "-i",
            help="Module whose @task functions this worker runs; repeat for several. "
            "Also [tool.sheppy] tasks.",
        ),
    ] = None,
) -> None:
    """Start a worker."""
    from sheppy_core._config import pyproject_settings
    from sheppy_core._plugins import backend_from_url
    from sheppy_core._worker import Worker

    level = (log_level or os.environ.get("SHEPPY_LOG_LEVEL") or "info").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise _fail(
            f"log level {level.lower()!r} is not one of debug, info, warning, error (SHEPPY_LOG_LEVEL)"
        )
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    concurrency = max_concurrent or int(_env_number("SHEPPY_MAX_CONCURRENT_TASKS", 10, 1))
    grace = (
        shutdown_timeout if shutdown_timeout is not None else _env_number("SHEPPY_SHUTDOWN_TIMEOUT", 30.0, 0)
    )
    url = backend_url or ""
    try:
        modules = list(import_ or []) or list(pyproject_settings().get("tasks", []))
        url = resolve_backend_url(backend_url)
        worker = Worker(
            _queues(queue),
            backend_from_url(url),
            shutdown_timeout=grace,
            max_concurrent_tasks=concurrency,
            max_prefetch_tasks=max_prefetch,
            enable_job_processing=not disable_job_processing,
            enable_scheduler=not disable_scheduler,
            enable_cron_manager=not disable_cron_manager,
            task_modules=modules,
        )
        asyncio.run(worker.work(max_tasks=max_tasks, oneshot=oneshot or burst))
    except BackendConnectionError as exc:
        raise _fail(f"cannot reach the backend at {redact_url(url)}: {exc}") from None
    except (SheppyError, ValueError) as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@app.command()
def backends(
    fmt: Annotated[str, typer.Option("-f", "--format", help="table|json")] = "table",
) -> None:
    """List installed backend plugins: distribution, version, URL schemes, contract, capabilities."""
    from sheppy_core._plugins import _describe, failed_plugins, get_backend_plugins

    rows = [_describe(p) for p in get_backend_plugins()]
    if fmt == "json":
        console.print_json(json.dumps({"backends": rows, "failed": dict(failed_plugins())}))
        return
    if fmt != "table":
        raise _fail(f"--format must be table or json, not {fmt!r}")
    table = Table(title="Installed sheppy backends")
    for column in ("distribution", "version", "schemes", "contract", "capabilities", "problem"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["distribution"],
            row["version"],
            ", ".join(row["schemes"]),
            str(row["contract_version"]),
            ", ".join(row["capabilities"]),
            row["problem"] or "",
        )
    console.print(table)
    for name, error in failed_plugins().items():
        errors.print(f"plugin {name} failed to load: {error}", highlight=False)


def main() -> None:
    app()

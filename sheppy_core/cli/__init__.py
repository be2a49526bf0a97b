"""The ``sheppy`` command line (typer + rich).

Commands follow sheppy's names and options (``work``, ``task``, ``queue``, ``cron``, ``experimental``)
and add operator tools: ``backends`` / ``backends check``, ``bench``, ``queue clear``, ``cron add`` /
``cron delete``, ``task list --status processing``, ``task retry --all-failed``.

Settings come from flags, then ``SHEPPY_*`` variables, then ``[tool.sheppy]`` in ``./pyproject.toml``,
then defaults (:mod:`sheppy_core._settings`). The current directory is put on ``sys.path`` so
``module:function`` names resolve — but only registered ``@task`` functions are ever run or queued.
Errors an operator can fix print one line on stderr and exit 1; passwords in URLs are redacted.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape

from sheppy_core import __version__
from sheppy_core.cli._backends import backends_app
from sheppy_core.cli._bench import bench
from sheppy_core.cli._common import console, errors, flag, one_line, propagated_line
from sheppy_core.cli._queues import cron_app, queue_app
from sheppy_core.cli._tasks import experimental_app, task_app
from sheppy_core.cli._web import web
from sheppy_core.cli._work import work
from sheppy_core.cli._workers import worker_app

__all__ = ["app", "main"]


def _help_option_without_type() -> None:
    """Show ``--help`` like every other flag: without a ``<bool>`` type column (``flag()`` does it for
    ours; typer builds the help option itself, on each command, through its vendored click)."""
    command_class: Any = getattr(getattr(typer, "_click", None), "core", None)
    command_class = getattr(command_class, "Command", None)
    original = getattr(command_class, "get_help_option", None)
    if original is None or getattr(original, "_sheppy", False):
        return  # another typer: its help looks as it looks, nothing breaks

    def get_help_option(self: Any, ctx: Any) -> Any:
        option = original(self, ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    get_help_option._sheppy = True  # type: ignore[attr-defined]
    command_class.get_help_option = get_help_option


_help_option_without_type()

app = typer.Typer(
    name="sheppy",
    help="Operate sheppy-core task queues.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        console.print(f"sheppy-core {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, flag("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    # `module:function` names given on the command line resolve against the current directory.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


app.command()(work)
app.command()(bench)
app.add_typer(task_app, name="task")
app.add_typer(queue_app, name="queue")
app.add_typer(cron_app, name="cron")
app.add_typer(backends_app, name="backends")
app.add_typer(experimental_app, name="experimental")
app.add_typer(worker_app, name="worker")
app.command()(web)


def main() -> None:
    """Console-script entry point (``sheppy``): an exception a command lets propagate (a failing
    prestart hook) is shown as one ``error:`` line, exit status 1."""
    try:
        app()
    except Exception as exc:
        line = propagated_line(exc)
        if line is None:
            raise
        shown = escape(one_line(line))
        errors.print(f"[bold red]error:[/] {shown}", highlight=False, soft_wrap=True, emoji=False)
        sys.exit(1)

"""What every ``sheppy`` command shares: consoles, options, settings, errors as one line, backends.

Errors an operator can fix (a bad URL, an unreachable server, an unknown function, bad JSON) are printed
as one line on stderr and exit with status 1; passwords in URLs are always redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich import box
from rich.cells import cell_len, set_cell_size
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from sheppy_core._queue import Queue
from sheppy_core._settings import Settings, load_settings
from sheppy_core._task import MAX_NESTING
from sheppy_core.backend import Backend, redact_secrets, redact_url
from sheppy_core.exceptions import BackendConnectionError, ConfigurationError, SheppyError

__all__ = [
    "Column",
    "Drop",
    "Format",
    "FormatOption",
    "QueueOption",
    "Shrink",
    "UrlOption",
    "WideOption",
    "connected",
    "console",
    "errors",
    "fail",
    "one_line",
    "parse_json_args",
    "pick_by_prefix",
    "print_columns",
    "print_json",
    "propagate",
    "propagated_line",
    "run",
    "settings_from",
]

T = TypeVar("T")

console = Console()
errors = Console(stderr=True)


class Format(StrEnum):
    """Output format of listing commands."""

    table = "table"
    json = "json"


def flag(*names: str, **options: Any) -> Any:
    """A boolean option: ``typer.Option`` shown in ``--help`` without a ``<bool>`` type column."""
    return typer.Option(*names, metavar="", **options)


QueueOption = Annotated[
    list[str] | None,
    typer.Option(
        "-q",
        "--queue",
        help="Queue name; repeat for several. Env: SHEPPY_QUEUE (comma-separated); "
        "[tool.sheppy] queue; default 'default'.",
        show_default=False,
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "-u",
        "--backend-url",
        help="Backend URL. Env: SHEPPY_BACKEND_URL; [tool.sheppy] backend; default sqlite:///sheppy.db.",
        show_default=False,
    ),
]
FormatOption = Annotated[Format, typer.Option("-f", "--format", help="Output format: table or json.")]
WideOption = Annotated[
    bool,
    flag("--wide", help="Table: full ids and every column, nothing cut (may be wider than the terminal)."),
]


def one_line(text: object) -> str:
    """Collapse a message onto one line (tracebacks and multi-line driver errors stay out)."""
    return " ".join(str(text).split())


def _redact_everywhere(message: str, url: str | None) -> str:
    # A backend should never put a secret of its URL into a message; if one slips through, hide it anyway.
    return redact_secrets(message, url) if url else message


def fail(message: str, url: str | None = None, *, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code`` (1; 2 for a bad option value)."""
    errors.print(
        f"[bold red]error:[/] {escape(_redact_everywhere(one_line(message), url))}",
        highlight=False,
        markup=True,
        soft_wrap=True,
        emoji=False,
    )
    raise typer.Exit(code)


def validation_line(exc: ValidationError) -> str:
    """``pydantic.ValidationError`` as one line: ``invalid arguments for f: x: Input should be ...``."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(arguments)"
        problems.append(f"{where}: {error['msg']}")
    return f"invalid arguments for {exc.title}: " + "; ".join(problems)


def settings_from(
    backend_url: str | None = None, queue: Sequence[str] | None = None, **flags: Any
) -> Settings:
    """The resolved settings for one command, or exit with the one-line reason."""
    try:
        return load_settings(backend_url=backend_url, queues=queue, **flags)
    except SheppyError as exc:
        fail(str(exc))


SETTLE_SECONDS = 0.1


async def _settled(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return await coroutine
    except BackendConnectionError:
        # A driver whose connect failed may still complete a future on this loop from its own thread
        # (aiosqlite does); closing the loop first makes that thread print a traceback at exit.
        await asyncio.sleep(SETTLE_SECONDS)
        raise


PROPAGATE_NOTE = "sheppy: "


def propagate(exc: BaseException, line: str) -> BaseException:
    """Mark ``exc`` to leave the command unchanged (sheppy lets a failing prestart hook's exception
    propagate); the console entry point :func:`sheppy_core.cli.main` shows it as ``error: line``."""
    exc.add_note(f"{PROPAGATE_NOTE}{line}")
    return exc


def propagated_line(exc: BaseException) -> str | None:
    """The one line :func:`propagate` attached to ``exc``, or None."""
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, str) and note.startswith(PROPAGATE_NOTE):
            return note[len(PROPAGATE_NOTE) :]
    return None


def run(coroutine: Coroutine[Any, Any, T], url: str | None = None) -> T:
    """Run ``coroutine``; any error an operator can fix becomes one line and exit status 1."""
    try:
        return asyncio.run(_settled(coroutine))
    except Exception as exc:
        if propagated_line(exc) is not None:
            raise
        if isinstance(exc, BackendConnectionError):
            fail(f"cannot reach the backend at {redact_url(url or '')}: {exc}", url)
        if isinstance(exc, ValidationError):
            fail(validation_line(exc), url)
        if isinstance(exc, (SheppyError, ValueError, TimeoutError, TypeError)):
            fail(str(exc) or type(exc).__name__, url)
        raise


def make_backend(url: str) -> Backend:
    """Build (not connect) the backend for ``url``; plugin and URL problems raise ``SheppyError``."""
    from sheppy_core._plugins import backend_from_url

    return backend_from_url(url)


@contextlib.asynccontextmanager
async def connected(url: str, *, create: bool = True) -> AsyncIterator[Backend]:
    """A connected backend for ``url``, disconnected afterwards.

    ``create=False`` (commands that only read or change what is there): a store that does not exist
    yet — a mistyped SQLite path — is an error naming it, and nothing is created.
    """
    backend = make_backend(url)
    if not create and await backend.store_exists() is False:
        where = getattr(backend, "path", None) or redact_url(url)
        raise ConfigurationError(
            f"no store at {where}: nothing was created (check the path or the URL; adding a task or "
            "starting a worker creates it)"
        )
    await backend.connect()
    try:
        yield backend
    finally:
        with contextlib.suppress(Exception):
            await backend.disconnect()


def on_queue(url: str, queue: str, operation: Callable[[Queue], Awaitable[T]]) -> T:
    """Connect to ``url``, run one ``Queue`` operation on ``queue``, disconnect; errors as in :func:`run`.

    ``on_queue(url, "default", lambda q: q.cancel(task_id))``
    """

    async def call() -> T:
        async with connected(url) as backend:
            return await operation(Queue(backend, queue))

    return run(call(), url)


def parse_json_args(args: str | None, kwargs: str | None) -> tuple[list[Any], dict[str, Any]]:
    """``-a '[1, 2]'`` and ``-k '{"x": 1}'`` as Python values, or exit with the reason."""
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    if args is not None:
        try:
            positional_value = json.loads(args)
        except json.JSONDecodeError as exc:
            fail(f"--args is not valid JSON ({exc}); expected an array such as '[1, \"a\"]'")
        except RecursionError:
            fail(f"--args is nested too deeply (more than {MAX_NESTING} levels)")
        if not isinstance(positional_value, list):
            fail(f"--args must be a JSON array such as '[1, \"a\"]', got {type(positional_value).__name__}")
        positional = positional_value
    if kwargs is not None:
        try:
            keyword_value = json.loads(kwargs)
        except RecursionError:
            fail(f"--kwargs is nested too deeply (more than {MAX_NESTING} levels)")
        except json.JSONDecodeError as exc:
            fail(f"--kwargs is not valid JSON ({exc}); expected an object such as '{{\"x\": 1}}'")
        if not isinstance(keyword_value, dict):
            fail(f"--kwargs must be a JSON object such as '{{\"x\": 1}}', got {type(keyword_value).__name__}")
        keywords = keyword_value
    return positional, keywords


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colours, no wrapping), for scripts."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


# -- tables that fit the terminal ------------------------------------------------------------------------

GAP = 2
"""Cells between two columns of a listing (a space of padding and the box's blank vertical line)."""
SHORT_ID = 8
"""Characters of an id a table shows, as git shows commits; more when two ids would look alike."""
MIN_ID_PREFIX = 4
"""The shortest id prefix a command accepts (as git), so a stray number is never read as an id."""
SHOWN_CANDIDATES = 5


def cut_right(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells, its end replaced by ``…`` when it is too long."""
    if cell_len(text) <= width:
        return text
    return set_cell_size(text, max(width - 1, 0)) + "…" if width > 0 else ""


def _tail(text: str, width: int) -> str:
    kept = ""
    for char in reversed(text):
        if cell_len(char + kept) > width:
            break
        kept = char + kept
    return kept


def cut_function(text: str, width: int) -> str:
    """A ``module:function`` name in ``width`` cells: its module path is cut from the left first, so the
    function's own name stays whole as long as it fits (``…jobs:send_report``)."""
    if cell_len(text) <= width:
        return text
    name = text.rpartition(":")[2]
    if cell_len(name) + 1 <= width:
        return "…" + _tail(text, width - 1)
    return cut_right(name, width)


def function_floor(names: Sequence[str]) -> int:
    """The narrowest function column in which every name keeps its function part whole (``…:name``)."""
    return max((cell_len(name.rpartition(":")[2]) + (":" in name) for name in names), default=0)


@dataclass(frozen=True)
class Column:
    """One column of a listing: a header that is never cut, its cells, and how a cell is cut to fit."""

    header: str
    cells: Sequence[str]
    justify: Literal["left", "right"] = "left"
    cut: Callable[[str, int], str] = cut_right

    @property
    def natural(self) -> int:
        return max([cell_len(self.header), *(cell_len(cell) for cell in self.cells)])


@dataclass(frozen=True)
class Shrink:
    """Narrow the column ``header`` (cutting its cells) down to ``floor`` cells, never below its header."""

    header: str
    floor: int = 0


@dataclass(frozen=True)
class Drop:
    """Leave the column ``header`` out."""

    header: str


Step = Shrink | Drop


@dataclass
class Layout:
    """The columns a listing shows, their widths, and what was left out to fit ``width``."""

    columns: list[Column]
    widths: list[int]
    dropped: list[str]

    @property
    def total(self) -> int:
        return sum(self.widths) + GAP * max(len(self.widths) - 1, 0)


def fit(columns: Sequence[Column], width: int, steps: Sequence[Step]) -> tuple[Layout, bool]:
    """Apply ``steps`` in order (most dispensable first) until the columns fit in ``width`` cells; then
    give cells left over back to the columns that were narrowed. Returns the layout and whether it fits.
    """
    layout = Layout(list(columns), [column.natural for column in columns], [])
    for step in steps:
        excess = layout.total - width
        if excess <= 0:
            break
        index = next((i for i, c in enumerate(layout.columns) if c.header == step.header), None)
        if index is None:
            continue
        if isinstance(step, Drop):
            layout.dropped.append(step.header)
            del layout.columns[index], layout.widths[index]
            continue
        floor = max(step.floor, cell_len(step.header))
        layout.widths[index] = min(layout.widths[index], max(floor, layout.widths[index] - excess))
    for index, column in enumerate(layout.columns):
        spare = width - layout.total
        if spare <= 0:
            break
        layout.widths[index] = min(column.natural, layout.widths[index] + spare)
    return layout, layout.total <= width


def _table(layout: Layout, *, cut: bool) -> Table:
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        header_style="bold",
    )
    for column, width in zip(layout.columns, layout.widths, strict=True):
        table.add_column(
            column.header, justify=column.justify, no_wrap=True, min_width=width, max_width=width
        )
    for cells in zip(*(column.cells for column in layout.columns), strict=True):
        row = [
            Text(column.cut(cell, width) if cut else cell)
            for column, width, cell in zip(layout.columns, layout.widths, cells, strict=True)
        ]
        table.add_row(*row)
    return table


def print_columns(columns: Sequence[Column], steps: Sequence[Step], *, wide: bool) -> Layout:
    """Print a listing on stdout. It fits the terminal by taking ``steps`` (columns every cell of which is
    empty are left out first); ``wide`` prints every column, every cell in full, however wide that is
    (for ``less -S``, or a file). Returns the layout printed (``.dropped``: columns left out to fit)."""
    if wide:
        layout = Layout(list(columns), [column.natural for column in columns], [])
        wide_console = Console(width=max(console.width, layout.total), highlight=False)
        wide_console.print(_table(layout, cut=False))
        return layout
    shown = [column for column in columns if any(column.cells)]
    layout, _ = fit(shown, console.width, steps)
    console.print(_table(layout, cut=True), highlight=False)
    return layout


def print_title(text: str) -> None:
    """The line above a listing (what it lists), bold on a terminal."""
    console.print(Text(text, style="bold"))


def print_note(text: str) -> None:
    """A plain line after a listing (paging, columns left out)."""
    console.print(Text(text))


def dropped_note(layout: Layout) -> None:
    """Say which columns were left out to fit the terminal, and how to see them."""
    if layout.dropped:
        print_note(f"more with --wide: {', '.join(layout.dropped)}")


def short_id_length(ids: Sequence[str]) -> int:
    """How many leading characters tell every id of ``ids`` apart: ``SHORT_ID``, or more when needed."""
    length = SHORT_ID
    longest = max((len(i) for i in ids), default=0)
    while length < longest and len({i[:length] for i in ids}) < len(set(ids)):
        length += 1
    return length


def is_id_prefix(value: str) -> bool:
    """Whether ``value`` could be the start of a UUID (hex digits and dashes, at least ``MIN_ID_PREFIX``)."""
    return MIN_ID_PREFIX <= len(value) <= 36 and all(c in "0123456789abcdef-" for c in value.lower())


def pick_by_prefix(prefix: str, ids: Sequence[str], what: str, queue_name: str) -> str:
    """The one id of ``ids`` starting with ``prefix``, or raise ``ValueError`` with the one-line reason:
    ``no task with id starting 3f2b in queue 'default'``, or the candidates of an ambiguous prefix."""
    matches = sorted({i for i in ids if i.startswith(prefix)})
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ValueError(f"no {what} with id starting {prefix} in queue {queue_name!r}")
    length = short_id_length(matches)
    shown = ", ".join(match[:length] for match in matches[:SHOWN_CANDIDATES])
    more = f" and {len(matches) - SHOWN_CANDIDATES} more" if len(matches) > SHOWN_CANDIDATES else ""
    raise ValueError(
        f"id prefix {prefix} is ambiguous in queue {queue_name!r}: {len(matches)} {what}s start with it "
        f"({shown}{more}); give more of the id"
    )

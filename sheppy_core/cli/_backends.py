"""``sheppy backends``: installed plugins; ``sheppy backends check URL``: is this backend healthy?"""

from __future__ import annotations

import asyncio
import statistics
import textwrap
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from sheppy_core.backend import redact_url
from sheppy_core.cli._common import (
    Format,
    FormatOption,
    console,
    errors,
    make_backend,
    print_json,
    run,
    settings_from,
)
from sheppy_core.exceptions import BackendConnectionError

__all__ = ["backends_app"]

backends_app = typer.Typer(
    help="List installed backend plugins, or check one backend with 'backends check URL'.",
    invoke_without_command=True,
)

PROBE_QUEUE = "sheppy-backends-check"


@backends_app.callback(invoke_without_command=True)
def backends(ctx: typer.Context, fmt: FormatOption = Format.table) -> None:
    """Every installed backend plugin: distribution, version, URL schemes, contract, capabilities."""
    if ctx.invoked_subcommand is not None:
        return
    from sheppy_core._plugins import _describe, failed_plugins, get_backend_plugins
    from sheppy_core.backend import abstract_problem

    plugins = get_backend_plugins()
    rows = [_describe(p) for p in plugins]
    if fmt is Format.json:
        print_json({"backends": rows, "failed": dict(failed_plugins())})
        return
    # One block per backend rather than a table: capability lists are long, and a six-column table
    # folds words ("blockin/g_pop") on an 80-column terminal. Lists wrap as prose, whole words only.
    width = max(console.width, 40)
    console.print("Installed sheppy backends", style="bold", highlight=False)
    in_full = []
    for plugin, row in zip(plugins, rows, strict=True):
        # The block names a few missing methods; the whole list follows, after every block.
        problems = [p for p in (plugin.problem, abstract_problem(plugin.backend_class, shown=3)) if p]
        schemes = ", ".join(row["schemes"])
        head = f"{row['distribution']} {row['version']}: {schemes} (contract {row['contract_version']})"
        lines = textwrap.wrap(
            head, width, subsequent_indent="    ", break_long_words=False, break_on_hyphens=False
        )
        for label, text in (
            ("capabilities", ", ".join(row["capabilities"]) or "none"),
            ("problem", "; ".join(problems)),
        ):
            if text:
                lines += textwrap.wrap(
                    f"{label}: {text}",
                    width,
                    initial_indent="  ",
                    subsequent_indent="    ",
                    break_long_words=False,
                    break_on_hyphens=False,
                )
        console.print("\n".join(lines), highlight=False, soft_wrap=True)
        if row["missing_methods"]:
            in_full.append(f"{row['backend']} ({schemes}): {abstract_problem(plugin.backend_class)}")
    for line in in_full:
        console.print(line, highlight=False)
    for name, error in failed_plugins().items():
        errors.print(f"plugin {name} failed to load: {error}", highlight=False)


async def _check(url: str, samples: int, timeout: float) -> dict[str, Any]:
    from sheppy_core._plugins import plugin_for_url

    plugin = plugin_for_url(url)
    backend = make_backend(url)
    report: dict[str, Any] = {
        "url": redact_url(url),
        "backend": f"{type(backend).__module__}.{type(backend).__qualname__}",
        "distribution": f"{plugin.distribution} {plugin.version}",
        "contract_version": plugin.contract_version,
        "capabilities": sorted(plugin.capabilities),
    }
    started = time.perf_counter()
    try:
        await asyncio.wait_for(backend.connect(), timeout)
    except TimeoutError:
        raise BackendConnectionError(f"no answer within {timeout:g} s") from None
    try:
        report["connect_ms"] = round((time.perf_counter() - started) * 1000, 2)
        report["server"] = await asyncio.wait_for(backend.server_info(), timeout)
        timings = []
        for _ in range(samples):
            began = time.perf_counter()
            await asyncio.wait_for(backend.size(PROBE_QUEUE), timeout)
            timings.append((time.perf_counter() - began) * 1000)
        timings.sort()
        report["latency_ms"] = {
            "samples": samples,
            "median": round(statistics.median(timings), 3),
            "min": round(timings[0], 3),
            "max": round(timings[-1], 3),
        }
    except TimeoutError:
        raise BackendConnectionError(
            f"the server stopped answering (no reply within {timeout:g} s)"
        ) from None
    finally:
        try:
            await backend.disconnect()
        except Exception:  # a failing disconnect must not hide the report
            report["disconnect"] = "failed"
    return report


@backends_app.command("check")
def check(
    url: Annotated[
        str | None,
        typer.Argument(
            help="Backend URL (default: SHEPPY_BACKEND_URL, [tool.sheppy] backend).", show_default=False
        ),
    ] = None,
    samples: Annotated[int, typer.Option("--samples", min=1, max=10000, help="Round trips to time.")] = 20,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for the server.")
    ] = 10.0,
    fmt: FormatOption = Format.table,
) -> None:
    """Connect to a backend; report server version, schema state and round-trip latency."""
    settings = settings_from(url)
    report = run(_check(settings.backend_url, samples, timeout), settings.backend_url)
    if fmt is Format.json:
        print_json(report)
        return
    table = Table(title=f"Backend check: {report['url']}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("backend", report["backend"])
    table.add_row("plugin", report["distribution"])
    table.add_row("contract", str(report["contract_version"]))
    table.add_row("capabilities", ", ".join(report["capabilities"]))
    table.add_row("connect", f"{report['connect_ms']} ms")
    for key, value in report["server"].items():
        table.add_row(key.replace("_", " "), str(value))
    latency = report["latency_ms"]
    table.add_row(
        "round trip (size)",
        f"median {latency['median']} ms over {latency['samples']} calls "
        f"(min {latency['min']}, max {latency['max']})",
    )
    console.print(table)
    console.print("[green]ok[/]")

"""``sheppy work``: run a worker; ``--burst`` drains the queues and exits, showing progress."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sheppy_core._registry import import_task_modules, registered_names
from sheppy_core._settings import Settings
from sheppy_core._worker import BURST_HORIZON, Worker
from sheppy_core.backend import Backend, redact_url
from sheppy_core.cli._common import (
    QueueOption,
    UrlOption,
    errors,
    fail,
    flag,
    make_backend,
    propagate,
    run,
    settings_from,
)
from sheppy_core.exceptions import BackendError, ConfigurationError, SheppyError

__all__ = ["work"]

logger = logging.getLogger("sheppy.cli")

PROGRESS_INTERVAL = 0.25
LOG_INTERVAL = 5.0


@contextlib.contextmanager
def _logging(level: str, rich_console: bool) -> Iterator[None]:
    """Send sheppy's log records to stderr at ``level`` for the duration of the command.

    Handler and level are restored afterwards, so running a command in-process (tests, embedding)
    leaves no handler pointing at a stream that is closed later.
    """
    handler: logging.Handler
    if rich_console:
        handler = RichHandler(console=errors, show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    sheppy_logger = logging.getLogger("sheppy")
    previous = sheppy_logger.level
    sheppy_logger.addHandler(handler)
    sheppy_logger.setLevel(level.upper())
    try:
        yield
    finally:
        sheppy_logger.removeHandler(handler)
        sheppy_logger.setLevel(previous)


async def _call_prestart(name: str) -> None:
    """Import and call the prestart hook once; any failure aborts before a worker starts.

    As in sheppy, the failure propagates: the hook's own exception, or a ``ValueError``
    (``ConfigurationError``) when the hook cannot be loaded.
    """
    import importlib

    module_name, _, function_name = name.partition(":")
    if not module_name or not function_name:
        problem = ConfigurationError(f"cannot load prestart hook {name!r}: expected 'module:function'")
        raise propagate(problem, str(problem))
    try:
        target: Any = importlib.import_module(module_name)
        for part in function_name.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        problem = ConfigurationError(f"cannot load prestart hook {name!r}: {exc}")
        raise propagate(problem, str(problem)) from None
    if not callable(target):
        problem = ConfigurationError(f"prestart hook {name!r} is not callable")
        raise propagate(problem, str(problem))
    try:
        outcome = target()
        if inspect.isawaitable(outcome):
            await outcome
    except Exception as exc:
        propagate(exc, f"prestart hook {name!r} failed: {type(exc).__name__}: {exc}")
        raise  # the hook's own exception, as in sheppy


async def _remaining(backend: Backend, queues: list[str]) -> int:
    return sum([await backend.size(name) for name in queues])


@dataclass(frozen=True)
class BurstSummary:
    """What a ``--burst`` run did: tasks that completed and that failed (no retry left), attempts run
    (retried ones included), and the scheduled tasks it left because they were not due in time."""

    completed: int
    failed: int
    attempts: int
    seconds: float
    scheduled_left: int = 0
    next_due_in: float | None = None

    def line(self, url: str, handed_back: int) -> str:
        rate = (self.completed + self.failed) / self.seconds if self.seconds > 0 else 0.0
        attempts = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        text = (
            f"burst finished in {self.seconds:.2f} s: {self.completed} completed, {self.failed} failed, "
            f"{attempts} ({rate:.1f} tasks/s) on {redact_url(url)}"
        )
        if self.scheduled_left:
            due = wait = ""
            if self.next_due_in is not None:
                due = f", the next due in {self.next_due_in:.0f} s"
                wait = f" (--wait-scheduled {math.ceil(self.next_due_in)} waits for it)"
            text += f"; {self.scheduled_left} scheduled task(s) left for later{due}{wait}"
        if handed_back:
            text += (
                f"; {handed_back} handed back unrun (not registered in this worker: --import its module, "
                "or leave it to a worker that has it)"
            )
        return text


async def _scheduled_left(worker: Worker) -> tuple[int, float | None]:
    """How many scheduled tasks the burst left, and in how many seconds the next is due."""
    if not worker.backend.is_connected:
        return 0, None
    count, nearest = 0, None
    try:
        for store in worker.stores:
            count += (await store.stats()).get("scheduled", 0)
            upcoming = await store.next_scheduled_at()
            if upcoming is not None and (nearest is None or upcoming < nearest):
                nearest = upcoming
    except BackendError:
        return 0, None
    due_in = None if nearest is None else max((nearest - datetime.now(UTC)).total_seconds(), 0.0)
    return count, due_in


async def _burst(
    worker: Worker, max_tasks: int | None, interactive: bool, wait_scheduled: float
) -> BurstSummary:
    """Run ``worker`` until its queues are empty, reporting progress."""
    names = [q.name for q in worker.queues]
    job = asyncio.create_task(worker.work(max_tasks=max_tasks, oneshot=True, wait_scheduled=wait_scheduled))
    started = time.monotonic()
    progress: Progress | None = None
    bar = None
    if interactive:
        progress = Progress(
            TextColumn("[bold]burst[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "completed {task.fields[done]} · failed {task.fields[failed]} · "
                "remaining {task.fields[remaining]} · {task.fields[rate]:.1f} tasks/s"
            ),
            TimeElapsedColumn(),
            console=errors,
            transient=False,
        )
        progress.start()
        bar = progress.add_task("burst", total=None, done=0, failed=0, remaining="?", rate=0.0)
    last_log = started

    async def report(final: bool) -> None:
        nonlocal last_log
        done, failed = worker.stats.processed, worker.stats.failed
        remaining: int | None = None
        # The worker disconnects its backend when it stops; the final report still shows its counts.
        if worker.backend.is_connected:
            try:
                remaining = await _remaining(worker.backend, names)
            except BackendError:
                if not final:
                    return  # the worker logs backend trouble itself; the display just skips a beat
        if remaining is None and not final:
            return
        rate = (done + failed) / max(time.monotonic() - started, 1e-9)
        if progress is not None and bar is not None:
            total = done + failed + (remaining or 0) + (0 if final else len(worker._running))
            progress.update(
                bar,
                completed=done + failed,
                total=total,
                done=done,
                failed=failed,
                remaining="?" if remaining is None else remaining,
                rate=rate,
            )
        elif final or time.monotonic() - last_log >= LOG_INTERVAL:
            last_log = time.monotonic()
            shown = "?" if remaining is None else remaining
            logger.info(
                "burst: completed=%d failed=%d remaining=%s (%.1f tasks/s)", done, failed, shown, rate
            )

    try:
        while not job.done():
            await asyncio.wait({job}, timeout=PROGRESS_INTERVAL)
            if not job.done():
                await report(final=False)
        await job
        await report(final=True)
        left, due_in = await _scheduled_left(worker)
    finally:
        if not job.done():
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job
        if progress is not None:
            progress.stop()
    stats, seconds = worker.stats, time.monotonic() - started
    return BurstSummary(stats.processed, stats.failed, stats.attempts, seconds, left, due_in)


def _serve_metrics(port: int, host: str) -> None:
    """Start the worker's ``/metrics`` endpoint, or fail with one line saying why it cannot."""
    try:
        from sheppy_core import prometheus

        prometheus.serve(port, host)
    except ImportError as exc:
        fail(f"--metrics-port: {exc}")
    except OSError as exc:
        fail(f"--metrics-port: cannot listen on {host}:{port}: {exc.strerror or exc}")


def _child_arguments(ctx: typer.Context) -> list[str]:
    """The options given to this ``sheppy work`` on its command line, minus ``--processes``: what each
    supervised child runs. Options not given are left for the child to resolve from the same environment
    and ``[tool.sheppy]``, as this process did."""
    arguments: list[str] = []
    for param in ctx.command.params:
        name = param.name
        source = ctx.get_parameter_source(name) if name else None
        if name is None or name == "processes" or source is None or source.name != "COMMANDLINE":
            continue
        value = ctx.params[name]
        option = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            secondary = getattr(param, "secondary_opts", [])
            if value:
                arguments.append(option)
            elif secondary:
                arguments.append(max(secondary, key=len))
        elif getattr(param, "multiple", False):
            for item in value or ():
                arguments += [option, str(item)]
        elif value is not None:
            arguments += [option, str(value)]
    return arguments


def _supervise(
    ctx: typer.Context, settings: Settings, metrics_port: int | None, run_to_completion: bool
) -> None:
    """Hand ``sheppy work --processes N`` (N > 1) to the supervisor, and exit as it ends."""
    from sheppy_core._supervisor import supervise

    if metrics_port is not None:
        fail(
            "--metrics-port cannot serve several worker processes from one port: run each worker as its own "
            "'sheppy work' with its own --metrics-port, and PROMETHEUS_MULTIPROC_DIR set to a directory they "
            "share (docs/workers.md)"
        )
    url = settings.backend_url
    try:
        make_backend(url)  # a bad URL or a missing plugin is one line here, not N crashing children
    except (SheppyError, ValueError) as exc:
        fail(str(exc), url)
    command = [sys.executable, "-m", "sheppy_core", "work", *_child_arguments(ctx)]
    # The environment beats [tool.sheppy]: each child is one worker, whatever the configuration says.
    env = {**os.environ, "SHEPPY_PROCESSES": "1"}
    with _logging(settings.log_level, rich_console=False):
        outcome = supervise(
            command,
            settings.processes,
            run_to_completion=run_to_completion,
            shutdown_timeout=settings.shutdown_timeout,
            env=env,
        )
    if outcome.status != 0:
        fail(outcome.reason or "a worker process failed", url, code=outcome.status)


def work(
    ctx: typer.Context,
    queue: QueueOption = None,
    backend_url: UrlOption = None,
    max_concurrent: Annotated[
        int | None,
        typer.Option(
            "-c",
            "--max-concurrent",
            help="Tasks run at once (>= 1). Env: SHEPPY_MAX_CONCURRENT_TASKS; "
            "[tool.sheppy] max_concurrent_tasks; default 10.",
            show_default=False,
        ),
    ] = None,
    max_prefetch: Annotated[
        int | None,
        typer.Option(
            "--max-prefetch",
            min=1,
            help="Deprecated (sheppy's option, still honoured): claim at most this many tasks at a time. "
            "Claims already ask only for free slots; use --prefetch to claim ahead.",
        ),
    ] = None,
    prefetch: Annotated[
        int,
        typer.Option(
            "--prefetch",
            min=0,
            help="Claim this many tasks beyond the free slots, to overlap claiming with running "
            "(many short tasks). Default 0: claim only for free slots.",
        ),
    ] = 0,
    oneshot: Annotated[bool, flag("--oneshot", help="Exit once every queue is empty.")] = False,
    burst: Annotated[
        bool,
        flag(
            "--burst",
            help="Exit once every queue is empty, showing progress (completed / failed / remaining, "
            "throughput) on a terminal and log lines otherwise. Empty: nothing queued, nothing processing "
            "anywhere, no retry of its own pending, no scheduled task due within --wait-scheduled.",
        ),
    ] = False,
    wait_scheduled: Annotated[
        float,
        typer.Option(
            "--wait-scheduled",
            min=0,
            metavar="SECONDS",
            help="With --burst/--oneshot: also wait for scheduled tasks due within SECONDS. Default 1.",
        ),
    ] = BURST_HORIZON,
    max_tasks: Annotated[
        int | None,
        typer.Option(
            "--max-tasks", min=1, help="Stop after claiming this many tasks (per process with --processes)."
        ),
    ] = None,
    processes: Annotated[
        str | None,
        typer.Option(
            "--processes",
            metavar="N",
            help="Worker processes to run (an integer >= 1, or 'auto': one per CPU core) under one "
            "supervisor that restarts those that die and forwards SIGTERM/SIGINT. Env: SHEPPY_PROCESSES; "
            "[tool.sheppy] processes; default 1 (this process is the worker).",
            show_default=False,
        ),
    ] = None,
    disable_job_processing: Annotated[bool, flag("--disable-job-processing")] = False,
    disable_scheduler: Annotated[bool, flag("--disable-scheduler")] = False,
    disable_cron_manager: Annotated[bool, flag("--disable-cron-manager")] = False,
    log_level: Annotated[
        str | None,
        typer.Option(
            "-l",
            "--log-level",
            help="debug|info|warning|error. Env: SHEPPY_LOG_LEVEL; [tool.sheppy] log_level; default info.",
            show_default=False,
        ),
    ] = None,
    shutdown_timeout: Annotated[
        float | None,
        typer.Option(
            "--shutdown-timeout",
            help="Seconds to let running tasks finish on SIGTERM (>= 0). Env: SHEPPY_SHUTDOWN_TIMEOUT; "
            "[tool.sheppy] shutdown_timeout; default 30.",
            show_default=False,
        ),
    ] = None,
    import_: Annotated[
        list[str] | None,
        typer.Option(
            "--import",
            "-i",
            help="Module whose @task functions this worker runs; repeat for several. [tool.sheppy] tasks.",
            show_default=False,
        ),
    ] = None,
    prestart: Annotated[
        str | None,
        typer.Option(
            "--prestart",
            help="module:function called once before the worker starts; a failure aborts. "
            "Env: SHEPPY_PRESTART; [tool.sheppy] prestart.",
            show_default=False,
        ),
    ] = None,
    lease: Annotated[
        float | None,
        typer.Option("--lease", min=0.1, help="Claim lease in seconds (default: the backend's, 15)."),
    ] = None,
    allow_empty: Annotated[
        bool,
        flag(
            "--allow-empty",
            help="Start even if no @task is registered (e.g. a scheduler-only worker). Without it a "
            "worker with no tasks refuses to start: it would hand every task back unrun.",
        ),
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            help="Serve Prometheus metrics of this worker at http://HOST:PORT/metrics "
            "(pip install 'sheppy-core[prometheus]'; PROMETHEUS_MULTIPROC_DIR for multi-process mode).",
            show_default=False,
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="Address --metrics-port listens on.")
    ] = "127.0.0.1",
    reload: Annotated[
        bool,
        flag(
            "--reload",
            help="Not supported (sheppy 0.0.7 restarts the worker on file changes): run the worker under "
            "a file watcher instead.",
        ),
    ] = False,
) -> None:
    """Start a worker that runs the @task functions of the imported modules."""
    if reload:
        # Restarting in-process on every save would re-run tasks cut off mid-way; a watcher around the
        # command restarts it as a fresh process, with the usual shutdown hand-back.
        fail(
            "--reload is not supported by sheppy-core: run the worker under a file watcher instead, e.g. "
            "watchfiles 'sheppy work ...' (pip install watchfiles)"
        )
    if disable_job_processing and disable_scheduler and disable_cron_manager:
        fail(
            "At least one processing type must be enabled: --disable-job-processing, --disable-scheduler "
            "and --disable-cron-manager together leave the worker nothing to do"
        )
    settings: Settings = settings_from(
        backend_url,
        queue,
        max_concurrent_tasks=max_concurrent,
        shutdown_timeout=shutdown_timeout,
        log_level=log_level,
        prestart=prestart,
        tasks=import_,
        processes=processes,
    )
    if settings.processes > 1:
        _supervise(ctx, settings, metrics_port, run_to_completion=burst or oneshot or max_tasks is not None)
        return
    if metrics_port is not None:
        _serve_metrics(metrics_port, metrics_host)
    interactive = burst and errors.is_terminal
    with _logging(settings.log_level, interactive):
        url = settings.backend_url
        try:
            backend = make_backend(url)
            worker = Worker(
                list(settings.queues),
                backend,
                shutdown_timeout=settings.shutdown_timeout,
                max_concurrent_tasks=settings.max_concurrent_tasks,
                max_prefetch_tasks=max_prefetch,
                enable_job_processing=not disable_job_processing,
                enable_scheduler=not disable_scheduler,
                enable_cron_manager=not disable_cron_manager,
                task_modules=list(settings.tasks),
                lease=lease,
                prefetch=prefetch,
            )
        except (SheppyError, ValueError) as exc:
            fail(str(exc), url)

        async def main() -> BurstSummary | None:
            if settings.prestart:
                await _call_prestart(settings.prestart)
            if not (allow_empty or disable_job_processing):
                # After the backend answers (a dead server is the first thing to say), before claiming.
                await backend.connect()
                import_task_modules(settings.tasks)
                if not registered_names():
                    fail(
                        "no @task is registered in this worker: name the modules that define them with "
                        "--import MODULE (or [tool.sheppy] tasks); --allow-empty starts it anyway",
                        url,
                    )
            try:
                if burst:
                    return await _burst(worker, max_tasks, interactive, wait_scheduled)
                await worker.work(max_tasks=max_tasks, oneshot=oneshot, wait_scheduled=wait_scheduled)
                return None
            finally:
                # The worker leaves its backend connected; close it so driver threads let the process exit.
                with contextlib.suppress(Exception):
                    await backend.disconnect()

        try:
            outcome = run(main(), url)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
    if outcome is not None:
        errors.print(outcome.line(url, worker.stats.handed_back), highlight=False, soft_wrap=True)

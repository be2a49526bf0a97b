"""Several worker processes under one supervisor (``sheppy work --processes N``).

The supervisor runs no task and opens no backend connection: it starts N children, each running the same
``sheppy work`` command line as a single worker (minus ``--processes``), and keeps them running:

- A child that dies (killed, crashed, exit status other than 0) is restarted after a backoff that starts
  at :attr:`RestartPolicy.first_backoff` and doubles up to :attr:`RestartPolicy.max_backoff`; a child that
  lived :attr:`RestartPolicy.stable_after` seconds resets it.
- Children that keep crashing (:attr:`RestartPolicy.crash_limit` deaths within
  :attr:`RestartPolicy.crash_window` seconds, none of them living ``stable_after``) make it give up: it
  stops the others gracefully and reports why, with a non-zero exit status.
- With ``run_to_completion`` (``--burst``, ``--oneshot``, ``--max-tasks``) a child that exits 0 has done
  its work and is not restarted; the supervisor ends when every child has.
- SIGTERM/SIGINT is forwarded to every child, which stops as a single worker does (running tasks finish
  within the shutdown timeout, claims are handed back); a second signal is forwarded too (as the other
  of the two, so that it cannot merge with the first in a child that has not run since), which makes
  the children cancel their tasks at once. Children still running ``shutdown_timeout + kill_grace``
  seconds after the first signal are killed (SIGKILL).

The children run in a process group of their own, so a Ctrl-C on the terminal reaches them once, through
the supervisor, rather than twice (which a worker takes as "stop now"); on Linux they are also sent
SIGTERM if the supervisor itself dies, so none is left running unsupervised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["RestartPolicy", "SupervisorOutcome", "describe_exit", "supervise"]

logger = logging.getLogger("sheppy.supervisor")

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class RestartPolicy:
    """When a dead child is restarted, and when the supervisor gives up on children that keep dying."""

    first_backoff: float = 0.5
    max_backoff: float = 10.0
    stable_after: float = 30.0
    """A child that lived this many seconds was not crashing: its death resets backoff and crash count."""
    crash_limit: int = 5
    crash_window: float = 60.0


@dataclass(frozen=True)
class SupervisorOutcome:
    """How the supervised run ended: the exit status for the command, and the one-line reason when it
    is not 0."""

    status: int
    reason: str | None = None


def describe_exit(returncode: int) -> str:
    """``exit status 3`` or ``killed by SIGKILL``: how a child ended, for log lines."""
    if returncode >= 0:
        return f"exit status {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


def _parent_death_signal() -> Callable[[], None] | None:
    """Linux: a function for a child to call between fork and exec so that the kernel sends it SIGTERM
    when the supervisor dies (even by SIGKILL). Built here, in the parent: importing or loading a library
    after a fork, with other threads about, could wait for ever on a lock one of them held."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)

    def die_with_parent() -> None:  # pragma: no cover - runs in the child
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)

    return die_with_parent


@dataclass
class _Supervisor:
    command: Sequence[str]
    processes: int
    run_to_completion: bool
    shutdown_timeout: float
    kill_grace: float
    policy: RestartPolicy
    env: Mapping[str, str] | None
    children: dict[int, asyncio.subprocess.Process] = field(default_factory=dict)
    """Slot number -> its live child."""
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    signals_seen: int = 0
    stop_reason: str | None = None
    deaths: deque[float] = field(default_factory=deque)
    preexec: Callable[[], None] | None = field(default_factory=_parent_death_signal)
    forwarded: set[int] = field(default_factory=set)
    """Return codes of children killed by a signal this supervisor forwarded (``-SIGTERM``)."""
    last_forwarded: signal.Signals | None = None

    def on_signal(self, sig: signal.Signals) -> None:
        self.signals_seen += 1
        if self.signals_seen == 1:
            logger.info("%s: stopping %d worker process(es) gracefully", sig.name, len(self.children))
        else:
            logger.info("%s again: telling the worker processes to stop at once", sig.name)
        self.stopping.set()
        self.forward(sig)

    def forward(self, sig: signal.Signals) -> None:
        # A child treats SIGTERM and SIGINT alike (the first stops it gracefully, the next at once), but
        # two signals of one kind still pending in a child that has not run in between (a busy machine)
        # arrive as one: each forward after the first sends the other kind, so none is lost.
        if sig == self.last_forwarded:
            sig = signal.SIGINT if sig == signal.SIGTERM else signal.SIGTERM
        self.last_forwarded = sig
        self.forwarded.add(-int(sig))
        for child in self.children.values():
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(sig)

    def give_up(self, reason: str) -> None:
        if self.stop_reason is None and not self.stopping.is_set():
            self.stop_reason = reason  # the command prints it, once, after the others have stopped
            logger.info("worker processes keep dying: stopping the others")
            self.stopping.set()
            self.forward(signal.SIGTERM)

    async def start(self, slot: int) -> asyncio.subprocess.Process:
        child = await asyncio.create_subprocess_exec(
            *self.command,
            env=None if self.env is None else dict(self.env),
            stdin=asyncio.subprocess.DEVNULL,
            process_group=0,
            preexec_fn=self.preexec,
        )
        self.children[slot] = child
        logger.info("started worker process %d/%d (pid %d)", slot, self.processes, child.pid)
        if self.stopping.is_set():
            # A signal landed while this child was being started: it stops with the others.
            child.send_signal(signal.SIGTERM)
        return child

    async def run_slot(self, slot: int) -> int:
        """Keep slot ``slot`` running until the stop or, run to completion, until its child exits 0.
        Returns how its last child ended: 0 if it stopped cleanly, or if it was waiting to be restarted
        when the stop came (nothing ran there to stop; its death was logged)."""
        backoff = self.policy.first_backoff
        while True:
            started = time.monotonic()
            child = await self.start(slot)
            returncode = await child.wait()
            lived = time.monotonic() - started
            logger.info(
                "worker process %d/%d (pid %d) ended (%s) after %.1f s",
                slot, self.processes, child.pid, describe_exit(returncode), lived,
            )
            if self.stopping.is_set() and self.stop_reason is None and returncode in self.forwarded:
                # Killed by the forwarded signal itself: it had not yet set up its handlers, so it held
                # no claim (a worker handles SIGTERM/SIGINT before it claims anything).
                return 0
            if self.stopping.is_set() or (returncode == 0 and self.run_to_completion):
                return returncode
            if lived >= self.policy.stable_after:
                self.deaths.clear()
                backoff = self.policy.first_backoff
            else:
                now = time.monotonic()
                self.deaths.append(now)
                while self.deaths and now - self.deaths[0] > self.policy.crash_window:
                    self.deaths.popleft()
                if len(self.deaths) >= self.policy.crash_limit:
                    self.give_up(
                        f"giving up: {len(self.deaths)} worker process deaths within "
                        f"{self.policy.crash_window:.0f} s, none lived {self.policy.stable_after:.0f} s "
                        f"(the last, pid {child.pid}: {describe_exit(returncode)})"
                    )
                    return returncode
            logger.info("restarting worker process %d/%d in %.1f s", slot, self.processes, backoff)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self.stopping.wait()
            if self.stopping.is_set():
                return 0 if self.stop_reason is None else returncode
            if lived < self.policy.stable_after:
                backoff = min(backoff * 2, self.policy.max_backoff)

    async def kill_stragglers(self) -> None:
        """After the first signal (or giving up): SIGKILL what still runs when the timeout is over."""
        await self.stopping.wait()
        await asyncio.sleep(self.shutdown_timeout + self.kill_grace)
        for slot, child in self.children.items():
            if child.returncode is None:
                logger.warning(
                    "worker process %d/%d (pid %d) did not stop within %.0f s: killing it",
                    slot, self.processes, child.pid, self.shutdown_timeout + self.kill_grace,
                )
                with contextlib.suppress(ProcessLookupError):
                    child.kill()

    async def run(self) -> SupervisorOutcome:
        loop = asyncio.get_running_loop()
        for sig in FORWARDED_SIGNALS:
            loop.add_signal_handler(sig, self.on_signal, sig)
        killer = asyncio.create_task(self.kill_stragglers())
        try:
            slots = [asyncio.create_task(self.run_slot(slot)) for slot in range(1, self.processes + 1)]
            statuses = await asyncio.gather(*slots)
        finally:
            killer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await killer
            for sig in FORWARDED_SIGNALS:
                loop.remove_signal_handler(sig)
        if self.stop_reason is not None:
            return SupervisorOutcome(1, self.stop_reason)
        unclean = [status for status in statuses if status != 0]
        if unclean:
            ends = ", ".join(describe_exit(status) for status in unclean)
            return SupervisorOutcome(1, f"{len(unclean)} worker process(es) did not stop cleanly: {ends}")
        return SupervisorOutcome(0)


def supervise(
    command: Sequence[str],
    processes: int,
    *,
    run_to_completion: bool,
    shutdown_timeout: float,
    kill_grace: float = 10.0,
    policy: RestartPolicy | None = None,
    env: Mapping[str, str] | None = None,
) -> SupervisorOutcome:
    """Run ``processes`` copies of ``command`` (an argv list) under one supervisor until they are done,
    stopped by SIGTERM/SIGINT, or keep crashing. ``env`` is the children's environment (default: this
    process's). Blocks; returns how it ended."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes!r}")
    supervisor = _Supervisor(
        list(command),
        processes,
        run_to_completion,
        shutdown_timeout,
        kill_grace,
        policy or RestartPolicy(),
        env,
    )
    return asyncio.run(supervisor.run())

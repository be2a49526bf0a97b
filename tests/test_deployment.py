"""The deployment manifests of docs/deployment.md (systemd, Docker, Kubernetes), checked by doing what
they do: no base image can be pulled here, so the test reads each manifest's entry command, health
check and stop settings from the page and runs the same sequence locally — start the worker, check its
health, give it a task, send SIGTERM while the task runs — and checks the worker behaves as the
manifests assume: the health check passes (and fails, with a reason, when the store is down), the
running task finishes, the process exits 0, well inside the grace period the manifest gives."""

from __future__ import annotations

import asyncio
import configparser
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sheppy_core import Queue

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "deployment.md").read_text()
SHEPPY = str(Path(sys.executable).with_name("sheppy"))
TASKS = '''
import time
from pathlib import Path

from sheppy_core import task


@task
def slow(marker: str, seconds: float) -> str:
    Path(marker + ".started").write_text("")
    time.sleep(seconds)
    Path(marker).write_text("done")
    return "done"
'''


def block(language: str) -> str:
    found = re.search(rf"^```{language}\n(.*?)^```", PAGE, re.S | re.M)
    assert found, f"docs/deployment.md has no {language} block"
    return found.group(1)


def systemd() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read_string(block("ini"))
    return unit


def dockerfile() -> dict[str, str]:
    lines = {}
    for line in block("dockerfile").splitlines():
        if line.strip() and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            lines[word] = rest
    return lines


def kubernetes() -> dict[str, object]:
    (deployment,) = yaml.safe_load_all(block("yaml"))
    assert isinstance(deployment, dict)
    return deployment


def entry_commands() -> dict[str, list[str]]:
    """Each manifest's worker command, as argv after the program name."""
    docker_cmd = json.loads(dockerfile()["CMD"])
    container = kubernetes()["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    return {
        "systemd": shlex.split(systemd()["Service"]["ExecStart"]),
        "docker": docker_cmd,
        "kubernetes": list(container["command"]),
    }


def health_commands() -> dict[str, list[str]]:
    healthcheck = dockerfile()["HEALTHCHECK"]
    container = kubernetes()["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    return {
        "systemd": shlex.split(systemd()["Service"]["ExecStartPre"]),
        "docker": json.loads(healthcheck[healthcheck.index("CMD ") + 4:]),
        "kubernetes": list(container["livenessProbe"]["exec"]["command"]),
    }


def grace_periods() -> dict[str, float]:
    spec = kubernetes()["spec"]["template"]["spec"]  # type: ignore[index]
    docker_stop = re.search(r"docker stop -t (\d+)", PAGE)
    assert docker_stop, "the page says how long docker stop must wait"
    return {
        "systemd": float(systemd()["Service"]["TimeoutStopSec"]),
        "docker": float(docker_stop.group(1)),
        "kubernetes": float(spec["terminationGracePeriodSeconds"]),
    }


def local(argv: list[str]) -> list[str]:
    """The command as this machine runs it: the ``sheppy`` of this venv."""
    assert Path(argv[0]).name == "sheppy", argv
    return [SHEPPY, *argv[1:]]


def shutdown_timeout(argv: list[str]) -> float:
    return float(argv[argv.index("--shutdown-timeout") + 1])


def test_the_three_manifests_run_the_same_worker_and_check() -> None:
    commands = {name: argv[1:] for name, argv in entry_commands().items()}
    assert len({tuple(argv) for argv in commands.values()}) == 1, commands
    checks = {name: argv[1:] for name, argv in health_commands().items()}
    assert len({tuple(argv) for argv in checks.values()}) == 1, checks


@pytest.mark.parametrize("manifest", ["systemd", "docker", "kubernetes"])
def test_the_grace_period_leaves_the_shutdown_timeout_room(manifest: str) -> None:
    timeout = shutdown_timeout(entry_commands()[manifest])
    grace = grace_periods()[manifest]
    # Room for the hand-back and the exit after the timeout, on a loaded machine.
    assert grace >= timeout + 10, f"{manifest}: grace {grace} s, shutdown timeout {timeout} s"


@pytest.fixture
def app(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "tasks.py").write_text(TASKS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHEPPY_")}
    env["SHEPPY_BACKEND_URL"] = f"sqlite:///{tmp_path / 'jobs.db'}"
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *filter(None, [env.get("PYTHONPATH")])])
    return tmp_path, env


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def test_the_health_check_passes_on_a_live_store_and_names_a_dead_one(
    app: tuple[Path, dict[str, str]],
) -> None:
    folder, env = app
    check = local(health_commands()["kubernetes"])
    alive = subprocess.run(check, cwd=folder, env=env, capture_output=True, text=True, timeout=60,
                           check=False)
    assert alive.returncode == 0, alive.stdout + alive.stderr
    dead = subprocess.run(check, cwd=folder, env={**env, "SHEPPY_BACKEND_URL": "redis://127.0.0.1:1/0"},
                          capture_output=True, text=True, timeout=60, check=False)
    lines = [line for line in (dead.stdout + dead.stderr).splitlines() if line.strip()]
    assert dead.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:"), dead.stderr


@pytest.mark.timeout(180)
def test_sigterm_lets_the_running_task_finish_and_exits_0_within_the_grace(
    app: tuple[Path, dict[str, str]],
) -> None:
    folder, env = app
    command = local(entry_commands()["kubernetes"])
    grace = grace_periods()["kubernetes"]
    sys.path.insert(0, str(folder))
    try:
        from myapp.tasks import slow  # type: ignore[import-not-found]

        job = slow(str(folder / "marker"), 2.0)

        async def enqueue() -> None:
            queue = Queue(env["SHEPPY_BACKEND_URL"])
            await queue.add(job)
            await queue.backend.disconnect()

        asyncio.run(enqueue())
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m == "myapp" or m.startswith("myapp.")]:
            del sys.modules[name]
    worker = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        wait_for(lambda: (folder / "marker.started").exists() or worker.poll() is not None, 60,
                 "the worker to start the task")
        assert worker.poll() is None, worker.communicate()
        stopped_at = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=grace)
        took = time.monotonic() - stopped_at
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, stderr
    assert (folder / "marker").read_text() == "done", "the running task was cut off by SIGTERM"
    assert took < shutdown_timeout(command), f"the stop took {took:.1f} s"

    async def outcome() -> str:
        queue = Queue(env["SHEPPY_BACKEND_URL"])
        stored = await queue.get_task(job)
        await queue.backend.disconnect()
        assert stored is not None
        return stored.status

    assert asyncio.run(outcome()) == "completed"

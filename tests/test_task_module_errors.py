"""A task module that cannot be imported (a SyntaxError, an exception at import time such as a missing
environment variable) is one line naming the module, the file:line and the error — not a traceback —
from every command that imports task modules (issue #20; docs/cli.md promises it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BROKEN = {
    "syntax_jobs": ("from sheppy_core import task\n\n@task\ndef f(:\n    pass\n", 4, "SyntaxError"),
    "env_jobs": (
        "import os\n\nfrom sheppy_core import task\n\nURL = os.environ['DATABASE_URL']\n\n"
        "@task\ndef f() -> None:\n    pass\n",
        5,
        "KeyError: 'DATABASE_URL'",
    ),
    "deep_jobs": (
        "from sheppy_core import task\n\n\ndef connect():\n    raise RuntimeError('no database')\n\n\n"
        "connect()\n",
        5,
        "RuntimeError: no database",
    ),
}


def sheppy(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHEPPY_") and k != "DATABASE_URL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "sheppy_core", *args], cwd=project, capture_output=True,
                          text=True, timeout=90, env=env, check=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for module, (source, _, _) in BROKEN.items():
        (tmp_path / f"{module}.py").write_text(source)
    return tmp_path


def _the_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got {len(lines)}:\n" + result.stdout + result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize("module", sorted(BROKEN))
def test_work_names_module_file_line_and_error(project: Path, module: str) -> None:
    _, line, error = BROKEN[module]
    url = f"sqlite:///{project / 'jobs.db'}"
    text = _the_line(sheppy(project, "work", "--burst", "-u", url, "--import", module))
    assert repr(module) in text, text
    assert f"{module}.py:{line}" in text, text
    assert error in text, text


@pytest.mark.parametrize("module", sorted(BROKEN))
def test_task_add_names_module_file_line_and_error(project: Path, module: str) -> None:
    _, line, error = BROKEN[module]
    url = f"sqlite:///{project / 'jobs.db'}"
    text = _the_line(sheppy(project, "task", "add", f"{module}:f", "-u", url))
    assert repr(module) in text, text
    assert f"{module}.py:{line}" in text, text
    assert error in text, text

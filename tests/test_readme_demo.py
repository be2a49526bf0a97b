"""The README's demo command, verbatim, on a copy of the repository's committed files in a fresh
directory (a new venv, nothing of this checkout's venv): what a stranger's first command does."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def demo_command() -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- demo-command -->\s*```\s*\n(.*?)\n```\s*<!-- /demo-command -->", text, re.S)
    assert found, "README.md has no demo command between <!-- demo-command --> markers"
    return found.group(1).strip()


def committed_copy(target: Path) -> Path:
    """The repository as a clone has it: the committed files of this checkout (not its venv, caches or
    a sheppy.db left by an earlier run)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.mark.timeout(600)
def test_the_readme_demo_command_works_on_a_fresh_copy(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists():
        pytest.fail("the README test needs the git checkout (it copies the committed files)")
    repo = committed_copy(tmp_path / "repo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHEPPY_", "VIRTUAL_ENV", "PYTHON"))}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", demo_command()], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=540, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert re.search(r"-> completed", done.stdout), output[-3000:]
    assert "burst finished" in output, output[-3000:]
    assert (repo / "examples" / "quickstart" / "sheppy.db").exists(), "the demo missed the SQLite default"

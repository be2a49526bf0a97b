"""The docs site (mkdocs.yml, docs/): it builds with ``mkdocs build --strict``, and every code block on
it is run.

- ``python`` blocks: each page's blocks run in page order, in one fresh interpreter, in an empty
  temporary folder that holds a package ``myapp`` with an empty ``tasks`` module (standing for "your
  application"), no ``SHEPPY_*`` variable set; a block with top-level ``await`` runs in the page's one
  event loop, a block without runs as plain code. Redis and
  PostgreSQL are the ones on 127.0.0.1, as for the rest of the suite.
- ``bash`` blocks: every ``sheppy ...`` line names a real command and only options it has; every
  ``pip install "sheppy-core[X]"`` names extras that exist.
- ``toml`` blocks parse; ``yaml`` blocks parse; blocks that are files of the repository (``--8<--``
  includes) are checked where those files are tested.

Pages whose code is run by a test of their own say so in ``COVERED_ELSEWHERE``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from sheppy_core.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
COVERED_ELSEWHERE = {
    # The guide's blocks are the files of examples/backend-tutorial, run by its own test.
    "writing-a-backend.md": ROOT / "tests" / "test_backend_guide.py",
}
_spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "mkdocs_hooks.py")
assert _spec is not None and _spec.loader is not None
hooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hooks)
expand_includes = hooks.expand_includes
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)


def nav_pages() -> list[str]:
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)

    def walk(entries: Any) -> list[str]:
        found: list[str] = []
        for entry in entries:
            for value in entry.values() if isinstance(entry, dict) else [entry]:
                found += walk(value) if isinstance(value, list) else [value]
        return found

    return walk(config["nav"])


def blocks(page: str, language: str) -> list[tuple[int, str]]:
    if not (DOCS / page).is_file():
        return []  # test_every_page_in_the_nav_exists_... says so
    text = expand_includes((DOCS / page).read_text())
    found = []
    for match in FENCE.finditer(text):
        if match.group(1) == language:
            found.append((text.count("\n", 0, match.start()) + 2, match.group(2)))
    return found


PAGES = nav_pages()
RUNNER = '''
import ast, asyncio, sys

SOURCES = {sources!r}

# One event loop for the page: a block with top-level await runs in it (what one block connects, the
# next uses); a block without runs as plain code, outside any loop (TestQueue needs that).
loop = asyncio.new_event_loop()
namespace = {{"__name__": "__main__"}}
for where, source in SOURCES:
    code = compile(source, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if asyncio.iscoroutine(result):
        loop.run_until_complete(result)
'''


def test_every_page_in_the_nav_exists_and_every_page_is_in_the_nav() -> None:
    missing = [page for page in PAGES if not (DOCS / page).is_file()]
    assert not missing, f"mkdocs.yml names pages that do not exist: {missing}"
    on_disk = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert on_disk <= set(PAGES), f"pages not in the nav: {sorted(on_disk - set(PAGES))}"


@pytest.mark.timeout(300)
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "index.html").exists() and (tmp_path / "reference" / "backend" / "index.html").exists()
    backend_page = (tmp_path / "reference" / "backend" / "index.html").read_text()
    assert "list_tasks" in backend_page and "[pop.fifo]" in backend_page, "the contract's docstrings are gone"


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "python")])
@pytest.mark.timeout(180)
def test_the_python_blocks_of_a_page_run(page: str, tmp_path: Path) -> None:
    if page in COVERED_ELSEWHERE:
        assert COVERED_ELSEWHERE[page].exists()
        return
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "tasks.py").write_text('"""Your application\'s tasks."""\n')
    sources = [(f"docs/{page}:{line}", source) for line, source in blocks(page, "python")]
    script = tmp_path / "run_docs_page.py"
    script.write_text(RUNNER.format(sources=sources))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHEPPY_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=170, check=False)
    assert done.returncode == 0, f"docs/{page}: a code block failed:\n{(done.stdout + done.stderr)[-4000:]}"


def _command(words: list[str]) -> tuple[Any, list[str], list[str]]:
    """The (typer) command a ``sheppy`` line names, the words that named it, and the rest."""
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    while words and words[0] in getattr(command, "commands", {}):
        path.append(words[0])
        command = command.commands[words.pop(0)]
    return command, path, words


def _sheppy_lines() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for line_number, source in blocks(page, "bash"):
            for offset, line in enumerate(source.splitlines()):
                line = line.split(" #", 1)[0].strip()
                if line.startswith("sheppy "):
                    found.append((f"docs/{page}:{line_number + offset}", line))
    return found


@pytest.mark.parametrize(("where", "line"), _sheppy_lines(), ids=[w for w, _ in _sheppy_lines()])
def test_every_sheppy_command_on_the_site_exists_with_its_options(where: str, line: str) -> None:
    words = shlex.split(line)[1:]
    command, path, rest = _command(words)
    assert path, f"{where}: 'sheppy {words[0]}' is not a command"
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for word in rest:
        if word.startswith("-") and word != "-":
            option = word.split("=", 1)[0]
            assert option in known, f"{where}: 'sheppy {' '.join(path)}' has no option {option}"


def test_every_extra_the_site_installs_exists() -> None:
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for page in PAGES:
        for _, source in blocks(page, "bash"):
            for named in re.findall(r"sheppy-core\[([\w,]+)\]", source):
                assert set(named.split(",")) <= extras, (page, named, sorted(extras))


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "toml") or blocks(p, "yaml")])
def test_the_toml_and_yaml_blocks_parse(page: str) -> None:
    for line, source in blocks(page, "toml"):
        try:
            tomllib.loads(source)
        except tomllib.TOMLDecodeError as exc:
            pytest.fail(f"docs/{page}:{line}: {exc}")
    for line, source in blocks(page, "yaml"):
        try:
            list(yaml.safe_load_all(source))
        except yaml.YAMLError as exc:
            pytest.fail(f"docs/{page}:{line}: {exc}")


def _report(name: str, clauses: dict[str, tuple[str, str]]) -> dict[str, Any]:
    return {
        "backend": {"name": f"{name.title()}Backend", "schemes": [name], "capabilities": ["ttl"]},
        "versions": {"sheppy-core": "0.1.0", f"sheppy-{name}": "0.1.0"},
        "date": "2026-12-03T12:00:00+00:00",
        "summary": {"passed": 1, "failed": 1, "skipped": 1, "xfail": 0},
        "clauses": {c: {"outcome": o, "reason": r, "tests": []} for c, (o, r) in clauses.items()},
    }


def test_the_matrix_shows_each_clause_by_backend_with_the_missing_capability(tmp_path: Path) -> None:
    from sheppy_conformance.matrix import load_reports, matrix_markdown

    (tmp_path / "a.json").write_text(json.dumps(_report("alpha", {
        "pop.fifo": ("passed", ""), "cron.list": ("skipped", "backend does not declare capability cron")})))
    (tmp_path / "b.json").write_text(json.dumps({"suites": {"x": _report("beta", {
        "pop.fifo": ("failed", "AssertionError: order")})}}))
    page = matrix_markdown(load_reports([tmp_path / "a.json", tmp_path / "b.json"]))
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in page.splitlines() if line.startswith("| `")}
    assert rows["`pop.fifo`"] == ["✅ passed", "❌ failed"], page
    assert rows["`cron.list`"] == ["skipped: lacks `cron`", "not run"], page
    assert "| alpha | ttl | sheppy-core 0.1.0, sheppy-alpha 0.1.0 | 2026-12-03T12:00:00+00:00 |" in page


def test_the_committed_matrix_covers_every_clause_on_every_bundled_backend() -> None:
    from sheppy_conformance import BackendConformance
    from sheppy_conformance._clause import CLAUSE_MARK

    tests = [getattr(BackendConformance, n) for n in dir(BackendConformance) if n.startswith("test_")]
    clause_ids = {m.args[0] for t in tests for m in getattr(t, "pytestmark", []) if m.name == CLAUSE_MARK}
    page = (DOCS / "backends" / "matrix.md").read_text()
    header = next(line for line in page.splitlines() if line.startswith("| clause |"))
    assert [c.strip() for c in header.split("|")[2:-1]] == ["memory", "sqlite", "redis", "postgresql",
                                                           "jsonfile"], header
    shown = set(re.findall(r"^\| `([\w.]+)` \|", page, re.M))
    assert shown == clause_ids, f"rebuild it with nox -s docs: {sorted(clause_ids ^ shown)}"

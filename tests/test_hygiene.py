"""Package hygiene (issue 17, item 7): what ``import sheppy_core`` costs and pulls in, what the
top level exports, where each distribution's version comes from, what the root ``pyproject.toml``
names, the one prefetch knob of ``Worker`` and the single root of ``exceptions``.

Checks about imports run in a fresh interpreter: this test process has long imported everything.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import sheppy_core
from sheppy_core import MemoryBackend, Worker, exceptions
from sheppy_core.cli import app

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "sheppy_core"


def run_python(code: str) -> Any:
    """Run ``code`` in a fresh interpreter of this venv; it prints one JSON value, returned here."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- runtime modules and the CLI ---------------------------------------------------------------------


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def runtime_modules() -> list[Path]:
    # The CLI package itself and ``python -m sheppy_core`` (which starts it) are the only CLI users.
    return sorted(
        path
        for path in CORE.rglob("*.py")
        if "cli" not in path.relative_to(CORE).parts and path.name != "__main__.py"
    )


def test_the_runtime_module_list_holds_the_modules_that_used_the_cli() -> None:
    # Guards the next test against scanning nothing.
    names = {path.name for path in runtime_modules()}
    assert {"_declarative_cron.py", "fastapi.py", "_worker.py", "__init__.py"} <= names


@pytest.mark.parametrize("path", runtime_modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_runtime_modules_do_not_import_the_cli_package(path: Path) -> None:
    cli_imports = sorted(
        name
        for name in imported_modules(path)
        if name == "sheppy_core.cli" or name.startswith("sheppy_core.cli.")
    )
    assert cli_imports == []


def test_declared_crons_load_without_the_cli(tmp_path: Path) -> None:
    # Behaviour, not only source: reading [[tool.sheppy.cron]] builds tasks, and the CLI stays unloaded.
    (tmp_path / "hygiene_cron_tasks.py").write_text(
        "from sheppy_core import task\n\n@task\ndef tick(n: int) -> int:\n    return n\n"
    )
    (tmp_path / "pyproject.toml").write_text(
        '[[tool.sheppy.cron]]\ntask = "hygiene_cron_tasks:tick"\nexpression = "* * * * *"\nargs = [3]\n'
    )
    code = f"""
import json, sys
sys.path.insert(0, {str(tmp_path)!r})
from pathlib import Path
from sheppy_core._declarative_cron import read_declared_crons
declared = read_declared_crons(Path({str(tmp_path / "pyproject.toml")!r}), "default")
print(json.dumps({{
    "funcs": [d.cron.spec.func for d in declared],
    "cli": sorted(m for m in sys.modules if m.startswith("sheppy_core.cli")),
    "typer": "typer" in sys.modules,
}}))
"""
    seen = run_python(code)
    assert seen == {"funcs": ["hygiene_cron_tasks:tick"], "cli": [], "typer": False}


# -- what `import sheppy_core` loads -----------------------------------------------------------------

HEAVY = ("fastapi", "starlette", "typer", "click", "rich", "croniter")


def test_import_sheppy_core_loads_neither_fastapi_nor_the_cli_libraries() -> None:
    loaded = run_python(
        "import json, sys\n"
        "import sheppy_core\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    assert loaded == []


def test_the_heavy_libraries_are_installed_so_the_import_check_means_something() -> None:
    for name in ("fastapi", "typer", "croniter"):
        assert importlib.util.find_spec(name) is not None, name


def test_depends_is_fastapis_own_once_asked_for() -> None:
    # Loading FastAPI lazily must not change what `Depends` is (§10: FastAPI's, when installed).
    seen = run_python(
        "import json, sys\n"
        "import sheppy_core\n"
        "before = 'fastapi' in sys.modules\n"
        "from sheppy_core import Depends\n"
        "import fastapi, fastapi.params\n"
        "marker = Depends(len)\n"
        "same = Depends is fastapi.Depends\n"
        "print(json.dumps([before, same, isinstance(marker, fastapi.params.Depends)]))\n"
    )
    assert seen == [False, True, True]


# -- the exported members ----------------------------------------------------------------------------

# A fresh interpreter in which no backend plugin is installed, as far as anything can tell: no entry
# point of the ``sheppy`` group is listed, and the top-level packages of the distributions that
# declare one cannot be imported.
WITHOUT_PLUGINS = """
import importlib.metadata as metadata
import importlib.abc
import sys

plugin_packages = set()
for dist in metadata.distributions():
    if any(ep.group == "sheppy" for ep in dist.entry_points):
        plugin_packages.update((dist.read_text("top_level.txt") or "").split())
        plugin_packages.update(
            ep.module.partition(".")[0] for ep in dist.entry_points if ep.group == "sheppy"
        )

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in plugin_packages:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
real_entry_points = metadata.entry_points

def entry_points(**selection):
    found = real_entry_points(**selection)
    if selection.get("group") == "sheppy":
        return metadata.EntryPoints(())
    if not selection:
        return metadata.EntryPoints(ep for ep in found if ep.group != "sheppy")
    return found

metadata.entry_points = entry_points
"""


def test_the_plugin_free_interpreter_has_no_plugin() -> None:
    seen = run_python(
        WITHOUT_PLUGINS
        + "import json\n"
        + "from sheppy_core._plugins import get_backend_plugins\n"
        + "hidden = []\n"
        + "for name in ('sheppy_redis', 'sheppy_sqlite', 'sheppy_postgres'):\n"
        + "    try:\n"
        + "        __import__(name)\n"
        + "    except ModuleNotFoundError:\n"
        + "        hidden.append(name)\n"
        + "print(json.dumps([hidden, sorted(p.distribution for p in get_backend_plugins())]))\n"
    )
    hidden, distributions = seen
    assert hidden == ["sheppy_redis", "sheppy_sqlite", "sheppy_postgres"]
    assert "sheppy-redis" not in distributions and "sheppy-sqlite" not in distributions


def test_star_import_works_with_no_plugin_installed() -> None:
    seen = run_python(
        WITHOUT_PLUGINS
        + "import json\n"
        + "namespace = {}\n"
        + "exec('from sheppy_core import *', namespace)\n"
        + "import sheppy_core\n"
        + "missing = [n for n in sheppy_core.__all__ if n not in namespace]\n"
        + "print(json.dumps([missing, len(sheppy_core.__all__)]))\n"
    )
    missing, exported = seen
    assert missing == [] and exported > 10


def test_redis_backend_still_imports_by_name_or_says_what_to_install() -> None:
    # Out of `__all__` (it lives in a plugin), but sheppy's explicit import keeps working (§2).
    seen = run_python(
        WITHOUT_PLUGINS
        + "import json\n"
        + "try:\n"
        + "    from sheppy_core import RedisBackend\n"
        + "    print(json.dumps('imported'))\n"
        + "except ImportError as exc:\n"
        + "    print(json.dumps(str(exc)))\n"
    )
    assert "pip install sheppy-redis" in seen
    from sheppy_core import RedisBackend

    assert "redis" in RedisBackend.url_schemes


def export_order(name: str) -> tuple[int, str]:
    # The order ruff's RUF022 keeps: SCREAMING_CASE, then CamelCase, then the rest.
    if name.isupper():
        return 0, name
    if name[0].isupper():
        return 1, name
    return 2, name


def test_all_is_sorted_without_duplicates() -> None:
    assert sheppy_core.__all__ == sorted(set(sheppy_core.__all__), key=export_order)


def test_every_public_top_level_name_is_exported() -> None:
    # Everything a user can see at the top level is listed (submodules are reached by their path).
    public = {
        name
        for name, value in vars(sheppy_core).items()
        if not name.startswith("_") and not isinstance(value, type(sys))
    }
    assert sorted(public - set(sheppy_core.__all__)) == []


def test_every_exported_name_is_an_attribute_of_the_package() -> None:
    missing = [name for name in sheppy_core.__all__ if not hasattr(sheppy_core, name)]
    assert missing == []


# -- versions ----------------------------------------------------------------------------------------

DISTRIBUTIONS = [
    ("sheppy-core", "sheppy_core", CORE / "__init__.py"),
    ("sheppy-sqlite", "sheppy_sqlite", ROOT / "plugins/sheppy-sqlite/sheppy_sqlite/__init__.py"),
    ("sheppy-redis", "sheppy_redis", ROOT / "plugins/sheppy-redis/sheppy_redis/__init__.py"),
    ("sheppy-postgres", "sheppy_postgres", ROOT / "plugins/sheppy-postgres/sheppy_postgres/__init__.py"),
    ("sheppy-conformance", "sheppy_conformance", ROOT / "conformance/src/sheppy_conformance/__init__.py"),
    ("sheppy-jsonfile", "sheppy_jsonfile", ROOT / "examples/sheppy-jsonfile/sheppy_jsonfile/__init__.py"),
]


@pytest.mark.parametrize(
    ("distribution", "package", "source"), DISTRIBUTIONS, ids=[d[0] for d in DISTRIBUTIONS]
)
def test_version_is_the_installed_distributions(distribution: str, package: str, source: Path) -> None:
    module = importlib.import_module(package)
    assert module.__version__ == importlib.metadata.version(distribution)
    assert "__version__" in module.__all__


@pytest.mark.parametrize(
    ("distribution", "package", "source"), DISTRIBUTIONS, ids=[d[0] for d in DISTRIBUTIONS]
)
def test_version_is_not_written_twice(distribution: str, package: str, source: Path) -> None:
    # A version typed into __init__.py drifts from pyproject.toml on the next release.
    tree = ast.parse(source.read_text())
    literals = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(target, ast.Name) and target.id == "__version__" for target in node.targets)
        and isinstance(node.value, ast.Constant)
    ]
    assert literals == []


def test_cli_version_is_the_distributions() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.split() == ["sheppy-core", importlib.metadata.version("sheppy-core")]


# -- the root pyproject.toml -------------------------------------------------------------------------

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_wheel_ships_only_package_directories_that_exist() -> None:
    packages = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    missing = [name for name in packages if not (ROOT / name / "__init__.py").is_file()]
    assert packages and missing == []


def test_the_root_wheel_ships_sheppy_core_only() -> None:
    # The plugins, the conformance suite and the example are distributions of their own.
    assert PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["sheppy_core"]


def test_console_scripts_point_at_callables_that_exist() -> None:
    for name, target in PYPROJECT["project"]["scripts"].items():
        module_name, _, attribute = target.partition(":")
        assert callable(getattr(importlib.import_module(module_name), attribute)), name


def test_type_checked_packages_are_importable() -> None:
    missing = [
        name for name in PYPROJECT["tool"]["mypy"]["packages"] if importlib.util.find_spec(name) is None
    ]
    assert missing == []


def test_test_paths_exist() -> None:
    missing = [
        path for path in PYPROJECT["tool"]["pytest"]["ini_options"]["testpaths"] if not (ROOT / path).is_dir()
    ]
    assert missing == []


def test_every_extra_names_a_distribution_known_here() -> None:
    # Each extra's requirements are installed in this dev environment: a misspelt or removed name fails.
    from packaging.requirements import Requirement

    unknown = []
    for extra, requirements in PYPROJECT["project"]["optional-dependencies"].items():
        for requirement in requirements:
            name = Requirement(requirement).name
            try:
                importlib.metadata.distribution(name)
            except importlib.metadata.PackageNotFoundError:
                unknown.append(f"{extra}: {name}")
    assert unknown == []


# -- one prefetch knob -------------------------------------------------------------------------------


def test_prefetch_is_the_knob_and_warns_about_nothing() -> None:
    backend = MemoryBackend()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        worker = Worker("q", backend, prefetch=3)
    assert worker.prefetch == 3


def test_max_prefetch_tasks_still_works_but_is_deprecated() -> None:
    backend = MemoryBackend()
    # sheppy's parameter (§12) keeps capping each claim (tests/compat/test_s12_worker.py) and says so.
    with pytest.warns(DeprecationWarning, match="max_prefetch_tasks.*prefetch"):
        worker = Worker("q", backend, max_prefetch_tasks=2)
    assert worker.max_prefetch_tasks == 2


def test_the_cli_max_prefetch_option_says_it_is_deprecated() -> None:
    result = CliRunner().invoke(app, ["work", "--help"], env={"COLUMNS": "200", "TERM": "dumb"})
    assert result.exit_code == 0
    # The option's help, from its line up to the next option's (rich wraps it over several lines).
    lines = result.output.splitlines()
    [start] = [i for i, line in enumerate(lines) if "--max-prefetch" in line]
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if line.startswith("│ -"):  # the next option (a wrapped line is indented)
            break
        block.append(line)
    text = " ".join(line.strip("│ ") for line in block)
    assert "deprecated" in text.lower() and "--prefetch" in text


def test_the_worker_documents_one_prefetch_knob() -> None:
    doc = Worker.__doc__ or ""
    assert ":param prefetch:" in doc and ":param max_prefetch_tasks:" in doc
    assert "deprecated" in doc.split(":param max_prefetch_tasks:")[1].split(":param")[0].lower()


# -- one root for every error ------------------------------------------------------------------------


def test_every_exception_class_is_under_the_root() -> None:
    classes = [getattr(exceptions, name) for name in exceptions.__all__]
    outside = [cls.__name__ for cls in classes if not issubclass(cls, exceptions.SheppyError)]
    assert outside == []


def test_task_timeout_error_is_both_the_root_and_a_builtin_timeout() -> None:
    error = exceptions.TaskTimeoutError("Task exceeded timeout of 1 seconds")
    assert isinstance(error, exceptions.SheppyError) and isinstance(error, TimeoutError)
    assert str(error) == "Task exceeded timeout of 1 seconds"
    with pytest.raises(exceptions.SheppyError):
        raise error

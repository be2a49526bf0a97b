"""Backend discovery goes through entry points (the dummy plugins are installed test distributions)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from sheppy_core import Queue, get_backend
from sheppy_core._plugins import get_backend_plugins, installed_schemes, reset_plugins
from sheppy_core.exceptions import ContractVersionError, DuplicateSchemeError, UnknownSchemeError


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    reset_plugins()
    yield
    reset_plugins()  # a registry narrowed by SHEPPY_LOAD_PLUGINS must not leak into other tests


def test_memory_registers_through_the_hook_like_any_plugin() -> None:
    memory = [p for p in get_backend_plugins() if "memory" in p.schemes]
    assert memory and memory[0].distribution == "sheppy-core"


def test_dummy_plugin_is_found_through_its_entry_point() -> None:
    plugin = next(p for p in get_backend_plugins() if "dummy" in p.schemes)
    assert plugin.distribution == "sheppy-dummy" and plugin.version == "0.0.1"
    assert type(get_backend("dummy://anything")).__name__ == "DummyBackend"
    # Not through an import in core: a fresh interpreter that imports only sheppy_core finds it.
    code = "import sheppy_core, sys; b = sheppy_core.get_backend('dummy://x'); print(type(b).__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "sheppy_dummy"


def test_import_reads_no_entry_points() -> None:
    code = (
        "import sys; import sheppy_core; from sheppy_core import Queue, Worker; import sheppy_core._plugins; "
        "print('sheppy_dummy' in sys.modules, sheppy_core._plugins._state is None)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_load_plugins_can_be_narrowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHEPPY_LOAD_PLUGINS", "")
    assert "dummy" not in installed_schemes() and "memory" in installed_schemes()
    reset_plugins()
    monkeypatch.setenv("SHEPPY_LOAD_PLUGINS", "sheppy-dummy")
    assert "dummy" in installed_schemes() and "oldver" not in installed_schemes()


def test_two_plugins_claiming_a_scheme_is_an_error_naming_both() -> None:
    with pytest.raises(DuplicateSchemeError) as info:
        Queue("clash://x")
    assert "sheppy-dummy" in str(info.value) and "sheppy-dummy-clash" in str(info.value)


def test_plugin_for_another_contract_version_is_refused() -> None:
    with pytest.raises(ContractVersionError, match="contract version 0"):
        Queue("oldver://x")


def test_unknown_scheme_suggests_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHEPPY_LOAD_PLUGINS", "sheppy-dummy")
    with pytest.raises(UnknownSchemeError) as info:
        Queue("postgresql://user:s3cret@db/app")
    message = str(info.value)
    assert "pip install sheppy-postgres" in message and "memory" in message and "s3cret" not in message
    with pytest.raises(UnknownSchemeError, match="no scheme"):
        Queue("just-a-path.db")

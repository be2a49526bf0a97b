"""Item 6 of the strictness issue: a failing clause says why, in the contract's words.

Every ``assert`` in the suite carries a message, and expected exceptions go through
:func:`sheppy_conformance.records.raises` (whose failure has a message) rather than a bare
``pytest.raises`` (whose failure says only "DID NOT RAISE"). The summary line of a failure is the
message's first line (tests/test_plugin.py checks that on a run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import sheppy_conformance

SUITE = Path(sheppy_conformance.__file__).parent
CHECKED = sorted([*SUITE.glob("clauses/*.py"), SUITE / "crash.py"])


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(SUITE.parent)}:{getattr(node, 'lineno', '?')}"


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: p.name)
def test_every_assert_says_why(path: Path) -> None:
    tree = ast.parse(path.read_text())
    bare = [_where(path, node) for node in ast.walk(tree)
            if isinstance(node, ast.Assert) and node.msg is None]
    assert not bare, f"asserts without a message in the contract's words: {', '.join(bare)}"


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: p.name)
def test_expected_exceptions_say_why(path: Path) -> None:
    tree = ast.parse(path.read_text())
    bare = [
        _where(path, node) for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr == "raises"
        and isinstance(node.func.value, ast.Name) and node.func.value.id == "pytest"
    ]
    assert not bare, f"pytest.raises without a reason (use records.raises(exc, why)): {', '.join(bare)}"

"""Make the helper modules of this directory (mutants, runner) importable under --import-mode=importlib."""

import sys
from pathlib import Path
from typing import Any

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

pytest_plugins = ["pytester"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from _runner import CAUGHT

    if not CAUGHT:
        return
    terminalreporter.section("mutants and the clauses that caught them")
    for mutant, clauses in sorted(CAUGHT.items()):
        terminalreporter.write_line(f"{mutant}: {', '.join(clauses)}")

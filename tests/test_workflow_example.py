"""The ETL example in examples/etl runs end to end (memory://, one process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "etl"


def test_etl_example_runs() -> None:
    done = subprocess.run(
        [sys.executable, "run.py"], cwd=EXAMPLE, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "loaded 4 rows, revenue 294.0" in done.stdout
    assert "failed sources: ['flaky']" in done.stdout
    assert "steps run: 8" in done.stdout

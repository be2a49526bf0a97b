"""The worker process of one benchmark case (started by ``_harness.WorkerProcess``; not run by hand).

Usage: ``python worker.py MODULE CONFIG_JSON N`` — imports ``MODULE`` (a ``sys_*.py`` file of this
directory, which also defines the task functions) and calls its ``run_worker(config, ready)``. The
worker reports on stdout (see ``_probe``) and runs until it is sent SIGTERM.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

import _probe
from _harness import worker_ready_and_wait


def main() -> None:
    module_name, config_json, n = sys.argv[1:4]
    _probe.configure(int(n), os.environ.get("BENCH_CPROFILE") or None, int(os.environ.get("BENCH_TICK") or 0))
    module = importlib.import_module(module_name)
    module.run_worker(json.loads(config_json), worker_ready_and_wait)


if __name__ == "__main__":
    main()

"""sheppy-core: an async-native task queue whose storage is a plug-in.

The public API follows sheppy's, so ``import sheppy`` becomes ``import sheppy_core``::

    from sheppy_core import Queue, Worker, task

    @task(retry=2)
    async def add(x: int, y: int) -> int:
        return x + y

    queue = Queue("sqlite:///jobs.db")
    await queue.add(add(1, 2))

Importing this package reads no entry point, environment variable or file: backends are discovered
on first use of a URL.
"""

from __future__ import annotations

from typing import Any

from sheppy_core._dependencies import Depends
from sheppy_core._plugins import backend_from_url as get_backend
from sheppy_core._processing import HandBackPolicy, TaskProcessor
from sheppy_core._queue import Queue
from sheppy_core._task import task
from sheppy_core._testqueue import TestQueue
from sheppy_core._worker import Worker
from sheppy_core._workflow import Workflow, WorkflowResult, workflow
from sheppy_core.backend import CONTRACT_VERSION, Backend
from sheppy_core.backend._memory import MemoryBackend
from sheppy_core.exceptions import BackendError
from sheppy_core.hookspecs import hookimpl
from sheppy_core.models import CURRENT_TASK, Task, TaskConfig, TaskCron, TaskSpec, TaskStatus

__version__ = "0.1.0"

__all__ = [
    "CONTRACT_VERSION",
    "CURRENT_TASK",
    "Backend",
    "BackendError",
    "Depends",
    "HandBackPolicy",
    "MemoryBackend",
    "Queue",
    "RedisBackend",
    "Task",
    "TaskConfig",
    "TaskCron",
    "TaskProcessor",
    "TaskSpec",
    "TaskStatus",
    "TestQueue",
    "Worker",
    "Workflow",
    "WorkflowResult",
    "__version__",
    "get_backend",
    "hookimpl",
    "task",
    "workflow",
]


def __getattr__(name: str) -> Any:
    # sheppy exported RedisBackend at the top level. The core never imports a plugin by name: the
    # class is looked up through the plugin registry (the entry point serving redis://).
    if name == "RedisBackend":
        from sheppy_core._plugins import KNOWN_SCHEMES, backend_class_for_scheme

        backend_class = backend_class_for_scheme("redis")
        if backend_class is None:
            raise ImportError(f"RedisBackend lives in a plugin: pip install {KNOWN_SCHEMES['redis']}")
        return backend_class
    if name == "SyncQueue":
        # Some sheppy releases between 0.0.7 and ``experimental`` exported it here.
        from sheppy_core.experimental import SyncQueue

        return SyncQueue
    raise AttributeError(f"module 'sheppy_core' has no attribute {name!r}")

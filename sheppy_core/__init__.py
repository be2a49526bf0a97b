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

import importlib
import importlib.metadata
import typing

if typing.TYPE_CHECKING:
    from sheppy_core._dependencies import Depends
    from sheppy_core._plugins import backend_from_url as get_backend
    from sheppy_core._processing import HandBackPolicy, TaskProcessor
    from sheppy_core._queue import Queue
    from sheppy_core._store import QueueStore
    from sheppy_core._task import task
    from sheppy_core._testqueue import TestQueue
    from sheppy_core._worker import Worker
    from sheppy_core._workflow import Workflow, WorkflowResult, workflow
    from sheppy_core.backend import CONTRACT_VERSION, Backend
    from sheppy_core.backend._memory import MemoryBackend
    from sheppy_core.exceptions import BackendError
    from sheppy_core.hookspecs import hookimpl
    from sheppy_core.models import CURRENT_TASK, Task, TaskConfig, TaskCron, TaskSpec, TaskStatus

    __version__: str

# Every public name is loaded on first use (PEP 562), so ``import sheppy_core.backend`` — what a
# backend plugin imports — does not load the engine, and a worker pays only for what it touches.
_LAZY: dict[str, tuple[str, str]] = {
    "CONTRACT_VERSION": ("sheppy_core.backend", "CONTRACT_VERSION"),
    "CURRENT_TASK": ("sheppy_core.models", "CURRENT_TASK"),
    "Backend": ("sheppy_core.backend", "Backend"),
    "BackendError": ("sheppy_core.exceptions", "BackendError"),
    # FastAPI's own ``Depends`` when it is installed: imported on first use, not by every worker.
    "Depends": ("sheppy_core._dependencies", "Depends"),
    "HandBackPolicy": ("sheppy_core._processing", "HandBackPolicy"),
    "MemoryBackend": ("sheppy_core.backend._memory", "MemoryBackend"),
    "Queue": ("sheppy_core._queue", "Queue"),
    "QueueStore": ("sheppy_core._store", "QueueStore"),
    "Task": ("sheppy_core.models", "Task"),
    "TaskConfig": ("sheppy_core.models", "TaskConfig"),
    "TaskCron": ("sheppy_core.models", "TaskCron"),
    "TaskProcessor": ("sheppy_core._processing", "TaskProcessor"),
    "TaskSpec": ("sheppy_core.models", "TaskSpec"),
    "TaskStatus": ("sheppy_core.models", "TaskStatus"),
    "TestQueue": ("sheppy_core._testqueue", "TestQueue"),
    "Worker": ("sheppy_core._worker", "Worker"),
    "Workflow": ("sheppy_core._workflow", "Workflow"),
    "WorkflowResult": ("sheppy_core._workflow", "WorkflowResult"),
    "get_backend": ("sheppy_core._plugins", "backend_from_url"),
    "hookimpl": ("sheppy_core.hookspecs", "hookimpl"),
    "task": ("sheppy_core._task", "task"),
    "workflow": ("sheppy_core._workflow", "workflow"),
}

__all__ = [
    "CONTRACT_VERSION",
    "CURRENT_TASK",
    "Backend",
    "BackendError",
    "Depends",
    "HandBackPolicy",
    "MemoryBackend",
    "Queue",
    "QueueStore",
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


def __getattr__(name: str) -> typing.Any:
    if name == "__version__":
        # The installed distribution's version, so it never drifts from pyproject.toml. Read on
        # first use: importing the package reads no file.
        version = importlib.metadata.version("sheppy-core")
        globals()["__version__"] = version
        return version
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    # sheppy exported RedisBackend at the top level. The core never imports a plugin by name: the
    # class is looked up through the plugin registry (the entry point serving redis://). It is not
    # in ``__all__``: ``from sheppy_core import *`` works without the plugin; import it by name.
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

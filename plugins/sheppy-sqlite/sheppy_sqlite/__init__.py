"""sheppy-sqlite: the SQLite backend of sheppy-core — a task queue in one file, no server.

    from sheppy_sqlite import SQLiteBackend

    backend = SQLiteBackend.from_url("sqlite:///sheppy.db?busy_timeout=5000")
    # or SQLiteBackend("sheppy.db", lease=30)

Installing the distribution registers the ``sqlite://`` scheme with sheppy-core (entry point group
``sheppy``). See the README for URL options, capabilities and latency.
"""

import importlib.metadata

from sheppy_sqlite._backend import SQLiteBackend
from sheppy_sqlite._config import SQLiteOptions, parse_url
from sheppy_sqlite._migrations import LATEST_SCHEMA_VERSION

__all__ = ["LATEST_SCHEMA_VERSION", "SQLiteBackend", "SQLiteOptions", "__version__", "parse_url"]

__version__ = importlib.metadata.version("sheppy-sqlite")

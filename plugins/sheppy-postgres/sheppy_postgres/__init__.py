"""sheppy-postgres: a PostgreSQL backend for sheppy-core.

Tasks are claimed with ``SELECT … FOR UPDATE SKIP LOCKED``, idle workers are woken by LISTEN/NOTIFY,
and tasks can be enqueued inside the caller's own transaction::

    from sheppy_postgres import PostgresBackend

    backend = PostgresBackend.from_url("postgresql://app@db/app?schema=jobs")
    await backend.connect()
    async with app_pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO orders ...")
        await backend.append("emails", [task.model_dump(mode="json")], connection=conn)
"""

import importlib.metadata

from sheppy_postgres._backend import Connection, PostgresBackend, migrate
from sheppy_postgres._config import PostgresConfig, PostgresOptions, parse_url

__all__ = [
    "Connection",
    "PostgresBackend",
    "PostgresConfig",
    "PostgresOptions",
    "__version__",
    "migrate",
    "parse_url",
]

__version__ = importlib.metadata.version("sheppy-postgres")

"""A prestart hook for the supervisor tests: a worker process that dies at start, every time."""

from __future__ import annotations

import os


def die_at_start() -> None:
    """Exit the whole process at once with status 3, as a crash at start would (no cleanup, no error line)."""
    os._exit(3)

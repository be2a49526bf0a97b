"""sheppy-redis: the Redis backend of sheppy-core.

``SHEPPY_BACKEND_URL=redis://127.0.0.1:6379/0`` (or ``rediss://``, ``unix://``) selects it once the
distribution is installed; :class:`RedisBackend` can also be built directly.
"""

import importlib.metadata

from sheppy_redis._backend import RedisBackend
from sheppy_redis._config import RedisOptions, parse_url

__all__ = ["RedisBackend", "RedisOptions", "__version__", "parse_url"]

__version__ = importlib.metadata.version("sheppy-redis")

"""sheppy-redis: the Redis backend of sheppy-core.

``SHEPPY_BACKEND_URL=redis://127.0.0.1:6379/0`` (or ``rediss://``, ``unix://``) selects it once the
distribution is installed; :class:`RedisBackend` can also be built directly.
"""

from sheppy_redis._backend import RedisBackend

__all__ = ["RedisBackend", "__version__"]

__version__ = "0.1.0"

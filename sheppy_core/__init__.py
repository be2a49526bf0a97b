"""sheppy-core: an async-native task queue whose storage is a plug-in."""

from sheppy_core.backend import Backend
from sheppy_core.exceptions import BackendError
from sheppy_core.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["Backend", "BackendError", "__version__", "hookimpl"]

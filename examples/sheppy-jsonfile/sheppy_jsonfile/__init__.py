"""sheppy-jsonfile: a minimal third-party sheppy-core backend keeping every queue in one JSON file.

The worked example of the backend author guide (``conformance/README.md``)::

    from sheppy_core import Queue
    queue = Queue("jsonfile:///tmp/sheppy.json")
"""

import importlib.metadata

from sheppy_jsonfile._backend import JsonFileBackend
from sheppy_jsonfile._config import JsonFileOptions, parse_url

__all__ = ["JsonFileBackend", "JsonFileOptions", "__version__", "parse_url"]

__version__ = importlib.metadata.version("sheppy-jsonfile")

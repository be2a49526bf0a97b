"""sheppy-jsonfile: a minimal third-party sheppy-core backend keeping every queue in one JSON file.

The worked example of the backend author guide (``conformance/README.md``)::

    from sheppy_core import Queue
    queue = Queue("jsonfile:///tmp/sheppy.json")
"""

from sheppy_jsonfile._backend import JsonFileBackend

__all__ = ["JsonFileBackend"]

"""sheppy-conformance: the sheppy-core Backend contract as a pytest plugin.

Two ways to run it:

* against any installed backend: ``pytest --pyargs sheppy_conformance --sheppy-backend memory://``
* from a backend's own tests: ``class TestMyBackend(BackendConformance)`` overriding ``make_backend``.

Importing this package is cheap: :class:`BackendConformance` (which pulls in the suite, Hypothesis and
sheppy-core) loads on first access, so the pytest plugin stays inert for projects that never use it.
"""

from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING, Any

from sheppy_conformance._clause import clause

if TYPE_CHECKING:
    from sheppy_conformance.suite import BackendConformance

__all__ = ["BackendConformance", "__version__", "clause"]
__version__ = importlib.metadata.version("sheppy-conformance")


def __getattr__(name: str) -> Any:
    if name == "BackendConformance":
        from sheppy_conformance.suite import BackendConformance

        return BackendConformance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

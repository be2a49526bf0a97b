"""Whether a backend class implements the whole contract: what ``sheppy backends`` and the
conformance suite say about a class that cannot be instantiated yet (an author's stub)."""

from __future__ import annotations

from sheppy_core.backend._base import Backend

__all__ = ["abstract_problem", "missing_contract_methods"]


def missing_contract_methods(backend_class: type[Backend]) -> list[str]:
    """The abstract methods ``backend_class`` leaves unimplemented, in the order the contract lists them
    (a class with any of them cannot be instantiated)."""
    missing = set(getattr(backend_class, "__abstractmethods__", ()))
    in_contract_order = [name for name in vars(Backend) if name in missing]
    return in_contract_order + sorted(missing - set(in_contract_order))


def abstract_problem(backend_class: type[Backend], shown: int | None = None) -> str | None:
    """``"abstract: append, pop, ... (12 of 21 contract methods missing)"``, or None for a complete class;
    ``shown`` limits how many names are spelled out."""
    missing = missing_contract_methods(backend_class)
    if not missing:
        return None
    total = len(Backend.__abstractmethods__ | set(missing))
    names = missing if shown is None or len(missing) <= shown else [*missing[:shown], "..."]
    return f"abstract: {', '.join(names)} ({len(missing)} of {total} contract methods missing)"

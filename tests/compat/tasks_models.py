"""Task functions of the §2 names, §3 defining-tasks and §4 task-record compatibility tests."""

from __future__ import annotations

import threading
from typing import Annotated, Any

from pydantic import BaseModel

from sheppy_core import CURRENT_TASK, Depends, Task, task


class Status(BaseModel):
    code: int
    message: str


class CustomTaskError(Exception):
    """A user-defined exception with two arguments, raised by tasks and rebuilt from its record."""

    def __init__(self, detail: str, code: int) -> None:
        super().__init__(detail, code)


class StrictError(Exception):
    """Takes one int: rebuilding it from its recorded args may fail, then the message is tried."""

    def __init__(self, code: int) -> None:
        super().__init__(code)


def give_seven() -> int:
    return 7


@task
async def add_async(x: int, y: int) -> int:
    return x + y


@task
def add_sync(x: int, y: int) -> int:
    return x + y


@task
def returns_status() -> Status:
    return Status(code=200, message="OK")


@task
async def returns_status_async(code: int) -> Status:
    return Status(code=code, message="OK")


@task
def returns_status_as_dict() -> Status:
    """Returns a dict: the annotation turns it into a Status."""
    return {"code": 201, "message": "Created"}  # type: ignore[return-value]


@task
def returns_unannotated_dict():  # type: ignore[no-untyped-def]
    return {"code": 200, "message": "OK"}


@task
def returns_wrong_type() -> int:
    return "not a number"  # type: ignore[return-value]


@task
def takes_status(status: Status) -> int:
    return status.code


@task
def raises_custom_error(code: int, detail: str = "bad things") -> None:
    raise CustomTaskError(detail, code)


@task
async def raises_custom_error_async(code: int, detail: str = "bad things") -> None:
    raise CustomTaskError(detail, code)


@task
def raises_value_error(message: str) -> None:
    raise ValueError(message)


@task
def which_thread() -> str:
    return threading.current_thread().name


@task
async def which_thread_async() -> str:
    return threading.current_thread().name


@task
def with_current(x: int, current: Task = CURRENT_TASK) -> str:
    return f"{x}:{current.id}"


@task
def with_depends(x: int, seven: int = Depends(give_seven)) -> int:
    return x + seven


@task
def with_annotated_depends(x: int, seven: Annotated[int, Depends(give_seven)]) -> int:
    return x + seven


@task
def with_var_args(first: int, *rest: Any, **extra: Any) -> list[Any]:
    return [first, list(rest), extra]


@task
def positional_only(a: int, /, b: int = 0) -> int:
    return a + b


@task
def keyword_only(*, k: int) -> int:
    return k


@task
def untyped(value):  # type: ignore[no-untyped-def]
    return value


@task(retry=3, retry_delay=[1, 5, 30], timeout=10, retry_on_timeout=True)
def configured() -> None:
    return None


@task(retry=2)
def retry_only() -> None:
    return None


@task
def nested_factory() -> None:
    """Docstring kept by functools.wraps."""

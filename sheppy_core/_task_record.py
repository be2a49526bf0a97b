"""The stored form of a ``Task``: a JSON object holding only what differs from the defaults.

A no-op task is about 180 bytes stored this way instead of about 640 with every field spelled out:
less JSON to build, encode, write, log and parse on every enqueue, claim and outcome, on every backend.
``Task.model_validate`` reads either form back to the same ``Task`` (a missing field takes its default),
so records written in full — by an earlier version, or by hand — stay readable, and a backend never
needs to know which form it was given.

``id``, ``status``, ``spec`` and ``created_at`` are always present: backends and people read them.
"""

from __future__ import annotations

import operator
from typing import Any, Final

from pydantic_core import to_jsonable_python

from sheppy_core.models import Task, TaskConfig

ALWAYS_STORED: Final = frozenset({"id", "status", "spec", "created_at"})

# Field -> the JSON of its default. A stored value equal to it (and of the same JSON type: 0 is not
# False, 1 is not 1.0) is left out.
_TASK_DEFAULTS: Final[dict[str, Any]] = {
    name: value
    for name, value in Task(spec={"func": "-"}).model_dump(mode="json").items()
    if name not in ALWAYS_STORED
}
_CONFIG_DEFAULTS: Final[dict[str, Any]] = TaskConfig().model_dump(mode="json")

# The fields a fresh task (as a @task call builds it) holds at None or 0, read together; the fast path
# below takes a task whose fields are all still so.
_NONE_BY_DEFAULT: Final = tuple(name for name, value in _TASK_DEFAULTS.items() if value is None)
_ZERO_BY_DEFAULT: Final = tuple(name for name, value in _TASK_DEFAULTS.items() if type(value) is int)
_read_unset: Final = operator.itemgetter(*_NONE_BY_DEFAULT, *_ZERO_BY_DEFAULT)
_UNSET: Final = (None,) * len(_NONE_BY_DEFAULT) + (0,) * len(_ZERO_BY_DEFAULT)

# A task function's config is one object shared by all its calls: its compact JSON is kept, keyed by
# identity (the entry holds the object, so the id is not reused while cached).
_config_json: dict[int, tuple[TaskConfig, dict[str, Any]]] = {}
_CONFIG_CACHE_SIZE: Final = 1024


def task_record(task: Task[Any]) -> dict[str, Any]:
    """The record to store for ``task``: its JSON form without the fields at their default values."""
    fields = task.__dict__
    if _read_unset(fields) != _UNSET or fields["attempt_errors"] or fields["trace_context"]:
        return compact_record(task.model_dump(mode="json"))
    # A task that has not run yet and carries nothing but what it is (nearly every task ``Queue.add`` is
    # given): its four values serialized in one call of pydantic-core's encoder, the same output as
    # ``model_dump`` gives, which costs several times as much for the whole model.
    spec = fields["spec"]
    task_id, created_at, args, kwargs = to_jsonable_python(
        (fields["id"], fields["created_at"], spec.args, spec.kwargs)
    )
    record = {
        "id": task_id,
        "status": fields["status"],
        "spec": {"func": spec.func, "args": args, "kwargs": kwargs},
        "created_at": created_at,
    }
    compact_config = _config_record(fields["config"])
    if compact_config:
        record["config"] = dict(compact_config)  # a copy: the record is the backend's to change
    return record


def _config_record(config: TaskConfig) -> dict[str, Any]:
    cached = _config_json.get(id(config))
    if cached is not None and cached[0] is config:
        return cached[1]
    compact = _without_defaults(config.model_dump(mode="json"), _CONFIG_DEFAULTS)
    if len(_config_json) >= _CONFIG_CACHE_SIZE:
        _config_json.clear()
    _config_json[id(config)] = (config, compact)
    return compact


def compact_record(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` (a task's full JSON form) without the fields at their default values."""
    compact = {
        name: value
        for name, value in record.items()
        if name in ALWAYS_STORED or not _is_default(value, _TASK_DEFAULTS.get(name, _NO_DEFAULT))
    }
    config = compact.get("config")
    if isinstance(config, dict):
        config = _without_defaults(config, _CONFIG_DEFAULTS)
        if config:
            compact["config"] = config
        else:
            del compact["config"]
    return compact


_NO_DEFAULT: Final = object()


def _without_defaults(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if not _is_default(v, defaults.get(k, _NO_DEFAULT))}


def _is_default(value: Any, default: Any) -> bool:
    return type(value) is type(default) and value == default

"""Driver errors become the contract's: bad input is BackendInputError, never a redis-py exception."""

from __future__ import annotations

import pytest
from sheppy_redis import RedisBackend

from sheppy_core.exceptions import BackendInputError


async def test_text_without_a_utf8_form_is_bad_input(backend: RedisBackend) -> None:
    # Queue names and task ids are checked up front ([input.unencodable]); a rate-limit key reaches
    # redis-py, whose UnicodeEncodeError escaped the backend.
    with pytest.raises(BackendInputError, match="UTF-8"):
        await backend.acquire_rate_limit("jobs", "key-\ud800", 1, 60.0, "task")
    assert await backend.acquire_rate_limit("jobs", "key", 1, 60.0, "task") is None
    assert await backend.append("jobs", [{"id": "a", "status": "new"}]) == [True]

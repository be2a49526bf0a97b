"""Driver errors become the contract's: bad input is BackendInputError, and the connection stays usable."""

from __future__ import annotations

import pytest
from sheppy_sqlite import SQLiteBackend

from sheppy_core.exceptions import BackendInputError


async def test_text_without_a_utf8_form_is_bad_input_not_a_closed_connection(backend: SQLiteBackend) -> None:
    # Queue names and task ids are checked up front ([input.unencodable]); a rate-limit key reaches
    # sqlite3, whose UnicodeEncodeError (a ValueError) was reported as "the connection is closed".
    with pytest.raises(BackendInputError, match="UTF-8"):
        await backend.acquire_rate_limit("jobs", "key-\ud800", 1, 60.0, "task")
    assert await backend.acquire_rate_limit("jobs", "key", 1, 60.0, "task") is None
    assert await backend.append("jobs", [{"id": "a", "status": "new"}]) == [True]

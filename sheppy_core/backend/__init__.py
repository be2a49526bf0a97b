"""The storage seam: the ``Backend`` contract, its capabilities, helpers for backend authors, and the
in-memory reference backend.

Backend plugins import from here (and only from sheppy-core's public names)::

    from sheppy_core.backend import Backend, CONTRACT_VERSION, BLOCKING_POP, to_iso, due_at

The backend kit is what every backend would otherwise write again: argument checks (``check_*``,
``_checks.py``), the missing-capability error (``missing_capability``, ``_capabilities.py``), named
queries and numbered migrations in ``.sql`` files (``_sql.py``), the common URL options ``lease``,
``ttl``, ``error_ttl`` (``parse_common_options``, ``_url_options.py``), URL redaction (``_url.py``),
record helpers (``_records.py``) and the rate-limit rule (``_rate_limits.py``), and:

- ``parse_server_url`` / ``ServerURL`` (``_server_url.py``): a server URL's parts and typed options;
- ``wait_for_finished`` / ``poll_for_claim`` (``_waiting.py``): the ``get_results`` wait, a polling ``pop``;
- ``translate_errors`` (``_driver_errors.py``): a driver's exceptions as the contract's, secrets redacted;
- ``record_to_json_bytes`` (``_records.py``): ``record_to_json`` as UTF-8 bytes;
- ``check_listing`` / ``listing_key`` / ``encode_cursor`` / ``page_of`` (``_pages.py``): ``list_tasks``.

The kit's own modules import nothing of the engine (tests/test_backend_kit.py checks it).
"""

from sheppy_core.backend._base import CONTRACT_VERSION, DEFAULT_COUNT_CAP, Backend
from sheppy_core.backend._capabilities import (
    BLOCKING_POP,
    CAPABILITIES,
    CHANGE_FEED,
    CRON,
    RATE_LIMIT,
    RESULT_NOTIFY,
    SHARED_STORE,
    TASK_PAGES,
    TRANSACTIONAL_ENQUEUE,
    TTL,
    WORKER_REGISTRY,
    WORKFLOWS,
    check_no_connection,
    missing_capability,
    missing_capability_reason,
)
from sheppy_core.backend._checks import (
    RATE_LIMIT_STRATEGIES,
    UNFINISHED_DELETE,
    check_aware,
    check_count,
    check_queue_name,
    check_rate_limit,
    check_seconds,
    check_task_id,
    check_task_ids,
    unfinished_delete_error,
)
from sheppy_core.backend._completeness import abstract_problem, missing_contract_methods
from sheppy_core.backend._driver_errors import translate_errors
from sheppy_core.backend._pages import (
    DEFAULT_PAGE_SIZE,
    LISTABLE_STATUSES,
    MAX_PAGE_SIZE,
    Listing,
    TaskPage,
    check_listing,
    decode_cursor,
    encode_cursor,
    listing_key,
    micros_to_datetime,
    page_of,
)
from sheppy_core.backend._rate_limits import FixedWindow, take_fixed_window, take_sliding_window
from sheppy_core.backend._records import (
    DEFAULT_TTL_SECONDS,
    ERROR_STATUSES,
    FINISHED_STATUSES,
    QUARANTINED,
    SCHEDULED_STATUSES,
    STATS_KEYS,
    decode_record,
    due_at,
    expires_at,
    from_iso,
    is_finished,
    is_quarantined,
    quarantine_record,
    record_from_json,
    record_to_json,
    record_to_json_bytes,
    retention_seconds,
    task_id_of,
    to_iso,
    utcnow,
)
from sheppy_core.backend._server_url import ServerURL, parse_server_url
from sheppy_core.backend._sql import (
    Migration,
    NamedQuery,
    check_schema_not_newer,
    load_migrations,
    load_named_queries,
    migrations_to_apply,
    parse_named_queries,
)
from sheppy_core.backend._url import redact_secrets, redact_url
from sheppy_core.backend._url_options import (
    COMMON_URL_OPTION_HELP,
    COMMON_URL_OPTIONS,
    CommonOptions,
    parse_common_options,
)
from sheppy_core.backend._waiting import Wake, poll_for_claim, wait_for_finished
from sheppy_core.exceptions import (
    BackendConnectionError,
    BackendError,
    BackendInputError,
    ConfigurationError,
    CorruptRecordError,
    NotSupportedError,
    TaskStateError,
)

__all__ = [
    "BLOCKING_POP",
    "CAPABILITIES",
    "CHANGE_FEED",
    "COMMON_URL_OPTIONS",
    "COMMON_URL_OPTION_HELP",
    "CONTRACT_VERSION",
    "CRON",
    "DEFAULT_COUNT_CAP",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_TTL_SECONDS",
    "ERROR_STATUSES",
    "FINISHED_STATUSES",
    "LISTABLE_STATUSES",
    "MAX_PAGE_SIZE",
    "QUARANTINED",
    "RATE_LIMIT",
    "RATE_LIMIT_STRATEGIES",
    "RESULT_NOTIFY",
    "SCHEDULED_STATUSES",
    "SHARED_STORE",
    "STATS_KEYS",
    "TASK_PAGES",
    "TRANSACTIONAL_ENQUEUE",
    "TTL",
    "UNFINISHED_DELETE",
    "WORKER_REGISTRY",
    "WORKFLOWS",
    "Backend",
    "BackendConnectionError",
    "BackendError",
    "BackendInputError",
    "CommonOptions",
    "ConfigurationError",
    "CorruptRecordError",
    "FixedWindow",
    "Listing",
    "MemoryBackend",
    "Migration",
    "NamedQuery",
    "NotSupportedError",
    "ServerURL",
    "TaskPage",
    "TaskStateError",
    "Wake",
    "abstract_problem",
    "check_aware",
    "check_count",
    "check_listing",
    "check_no_connection",
    "check_queue_name",
    "check_rate_limit",
    "check_schema_not_newer",
    "check_seconds",
    "check_task_id",
    "check_task_ids",
    "decode_cursor",
    "decode_record",
    "due_at",
    "encode_cursor",
    "expires_at",
    "from_iso",
    "is_finished",
    "is_quarantined",
    "listing_key",
    "load_migrations",
    "load_named_queries",
    "micros_to_datetime",
    "migrations_to_apply",
    "missing_capability",
    "missing_capability_reason",
    "missing_contract_methods",
    "page_of",
    "parse_common_options",
    "parse_named_queries",
    "parse_server_url",
    "poll_for_claim",
    "quarantine_record",
    "record_from_json",
    "record_to_json",
    "record_to_json_bytes",
    "redact_secrets",
    "redact_url",
    "retention_seconds",
    "take_fixed_window",
    "take_sliding_window",
    "task_id_of",
    "to_iso",
    "translate_errors",
    "unfinished_delete_error",
    "utcnow",
    "wait_for_finished",
]


def __getattr__(name: str) -> object:
    # MemoryBackend imports the task runner (for instant processing); load it on first use so that
    # plugins importing the contract do not pay for it.
    if name == "MemoryBackend":
        from sheppy_core.backend._memory import MemoryBackend

        return MemoryBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

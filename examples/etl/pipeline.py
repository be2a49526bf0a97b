"""An ETL pipeline as a sheppy-core workflow: extract from several sources in parallel, transform each
batch in parallel, load once, and report what was quarantined.

Every function here is an ordinary ``@task``; only ``etl`` is a ``@workflow``. The workflow is a plain
generator, so it must be deterministic: it decides what to do next only from the results it is sent.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sheppy_core import task, workflow

# Stand-ins for real sources (an API, a CSV export, a database); "flaky" is down today.
SOURCES: dict[str, list[dict[str, Any]]] = {
    "shop": [{"sku": "A-1", "qty": "3", "price": "9.90"}, {"sku": "B-2", "qty": "1", "price": "24.50"}],
    "market": [{"sku": "a-1", "qty": "2", "price": "9.90"}, {"sku": "C-3", "qty": "x", "price": "5"}],
    "wholesale": [{"sku": "B-2", "qty": "10", "price": "22.00"}],
    "flaky": [],
}


class Row(BaseModel):
    sku: str
    qty: int
    price: float


class Report(BaseModel):
    loaded: int
    revenue: float
    quarantined: list[str]
    failed_sources: list[str]
    output: str


@task(retry=2, retry_delay=0.01)
async def extract(source: str) -> list[dict[str, Any]]:
    if source == "flaky":
        raise ConnectionError(f"source {source!r} is unreachable")
    return SOURCES[source]


@task
async def transform(source: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Normalise one batch; rows that do not parse are quarantined, not fatal."""
    good: list[dict[str, Any]] = []
    bad: list[str] = []
    for record in records:
        try:
            row = Row(sku=record["sku"].upper(), qty=int(record["qty"]), price=float(record["price"]))
        except (KeyError, ValueError):
            bad.append(f"{source}:{json.dumps(record, sort_keys=True)}")
        else:
            good.append(row.model_dump())
    return {"rows": good, "quarantined": bad}


@task
def load(rows: list[Row], output: str) -> int:
    """Aggregate by SKU and write the result (a file stands in for the warehouse). A sync task: it runs
    in a worker thread, so its blocking I/O does not stall the event loop."""
    totals: dict[str, dict[str, float]] = {}
    for row in rows:
        entry = totals.setdefault(row.sku, {"qty": 0, "revenue": 0.0})
        entry["qty"] += row.qty
        entry["revenue"] = round(entry["revenue"] + row.qty * row.price, 2)
    Path(output).write_text(json.dumps(totals, indent=2, sort_keys=True))
    return len(rows)


@workflow
def etl(sources: list[str], output: str) -> Generator[Any, Any, Report]:
    extracted = yield [extract(s) for s in sources]  # fan-out; resumes when all have finished
    ok = [(s, t) for s, t in zip(sources, extracted, strict=True) if t.status == "completed"]
    failed = [s for s, t in zip(sources, extracted, strict=True) if t.status != "completed"]

    batches = yield [transform(s, t.result) for s, t in ok]
    rows = [Row.model_validate(r) for b in batches for r in b.result["rows"]]
    quarantined = sorted(q for b in batches for q in b.result["quarantined"])

    loaded = yield load(rows, output)  # fan-in
    if loaded.status != "completed":
        raise RuntimeError(f"load failed: {loaded.exception}")
    return Report(  # coerced through Generator[..., ..., Report]
        loaded=loaded.result,
        revenue=round(sum(r.qty * r.price for r in rows), 2),
        quarantined=quarantined,
        failed_sources=failed,
        output=output,
    )

"""Run the ETL workflow with a worker in this process.

    cd examples/etl && python run.py                 # memory:// (one process)
    python run.py sqlite:///etl.db                   # any backend URL works the same way

With a shared store you can instead run workers elsewhere (``sheppy work --import pipeline``) and
only add the workflow here.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from pipeline import SOURCES, etl

from sheppy_core import Queue, Worker, get_backend


async def main(url: str) -> None:
    # instant_processing=false: a real queue, drained by the worker below (memory:// would otherwise
    # run every step inline inside add_workflow).
    backend = get_backend(url if url != "memory://" else "memory://?instant_processing=false")
    queue = Queue(backend, "etl")
    worker = Worker("etl", backend, enable_cron_manager=False)
    running = asyncio.create_task(worker.work(register_signal_handlers=False))

    output = str(Path(tempfile.gettempdir()) / "sheppy-etl-output.json")
    started = await queue.add_workflow(etl(sorted(SOURCES), output))
    print(f"workflow {started.workflow.id}: {len(started.pending_tasks)} extract steps submitted")

    done = await queue.wait_for_workflow(started.workflow, timeout=30)
    worker.stop()
    await running
    assert done is not None
    if not done.completed:
        raise SystemExit(f"workflow failed: {done.exception}")
    report = done.final_result
    print(f"loaded {report.loaded} rows, revenue {report.revenue}")
    print(f"quarantined: {report.quarantined}")
    print(f"failed sources: {report.failed_sources}")
    print(f"steps run: {len(done.task_order)}; output: {report.output}")
    print(await asyncio.to_thread(Path(report.output).read_text))
    await backend.disconnect()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "memory://"))

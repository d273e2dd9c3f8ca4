"""`ioc` with one fault injected, for the "nothing lost" tests: run as
`python -m tests.support.faulty_worker worker` with NOTHING_LOST_FAULT naming the fault.

Faults that need a batch in flight fire at the agent's NOTHING_LOST_AT-th batch (default 2):
that `Pipeline.handle` call "stores" nothing and instead
- `fetch_raises`: holds its batch; the consumer's next fetch raises (an exception in the
  consumer/fetcher while batches are in flight);
- `timer_raises`: holds its batch; the next stats timer tick raises (another task of the app
  crashes);
- `agent_cancelled`: cancels its own task, the agent's actor (as a cancellation from outside
  would), while it holds the batch;
- `body_raises`: raises out of the agent's loop body (what the pipeline never does, but a bug
  would).
- `no_cramjam`: no fault in flight; the codec library cannot be imported, so snappy, lz4 and
  zstd batches cannot be decompressed.
Each fault logs `fault.injected` (with the batch's first offset) when it fires.

Not imported by the running platform; the test harness only.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any


def _log(what: str, **fields: Any) -> None:
    detail = " ".join(f"{k}={v}" for k, v in fields.items())
    print(f"fault.injected fault={what} {detail}", file=sys.stderr, flush=True)


def install(fault: str, at: int) -> None:
    if fault == "no_cramjam":
        sys.modules["cramjam"] = None  # type: ignore[assignment]  # import cramjam -> ImportError
        return

    import streams.faust_ext as faust_ext
    from streams.pipeline import Pipeline

    armed = asyncio.Event()
    calls = [0]
    handle = Pipeline.handle

    async def faulty_handle(self: Pipeline, domain: str, records: Any) -> None:
        calls[0] += 1
        if calls[0] != at:
            return await handle(self, domain, records)
        _log(fault, domain=domain, partition=records[0].partition, offset=records[0].offset)
        if fault == "body_raises":
            raise RuntimeError("injected: the loop body raised")
        if fault == "agent_cancelled":
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(3600)
        armed.set()
        await asyncio.Event().wait()  # a write that never returns

    Pipeline.handle = faulty_handle  # type: ignore[method-assign]

    if fault == "fetch_raises":
        fetched_records = faust_ext.fetched_records

        async def faulty_fetched_records(*args: Any, **kwargs: Any) -> Any:
            if armed.is_set():
                raise RuntimeError("injected: the fetcher raised")
            return await fetched_records(*args, **kwargs)

        faust_ext.fetched_records = faulty_fetched_records  # type: ignore[assignment]

    if fault == "timer_raises":
        write_stats = Pipeline.write_stats

        def faulty_write_stats(self: Pipeline) -> None:
            if armed.is_set():
                raise RuntimeError("injected: the stats timer raised")
            write_stats(self)

        Pipeline.write_stats = faulty_write_stats  # type: ignore[method-assign]


def main() -> None:
    install(os.environ["NOTHING_LOST_FAULT"], int(os.environ.get("NOTHING_LOST_AT", "2")))
    from ioc.cli import main as ioc_main

    ioc_main()


if __name__ == "__main__":
    main()

"""A real consumer process for crash tests: `python -m tests.support.consumer_process
RABBIT_URL NAMESPACE JOURNAL MODE`. Every delivery appends `start <event id>` to the journal;
MODE `hang` then blocks forever (to be killed mid-handler), MODE `work` appends `done <id>`."""

import asyncio
import os
import sys
from pathlib import Path

from sift_common.contracts import DocumentCollected
from sift_common.messaging.topology import ConsumerQueue, Topology
from tests.support.rabbit import running_consumer

CRASH_SPEC = ConsumerQueue("test.crash", DocumentCollected, retry_delays_ms=(500,))


def _append(journal: Path, line: str) -> None:
    with journal.open("a") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())


async def main(rabbit_url: str, namespace: str, journal: Path, mode: str) -> None:
    async def handler(event: DocumentCollected) -> None:
        _append(journal, f"start {event.event_id} {os.getpid()}")
        if mode == "hang":
            await asyncio.Event().wait()
        _append(journal, f"done {event.event_id} {os.getpid()}")

    topology = Topology(namespace, (CRASH_SPEC,))
    async with running_consumer(rabbit_url, topology, CRASH_SPEC, handler):
        await asyncio.Event().wait()


if __name__ == "__main__":
    url, ns, path, run_mode = sys.argv[1:5]
    asyncio.run(main(url, ns, Path(path), run_mode))

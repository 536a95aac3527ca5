"""The fault matrix: the whole pipeline (real gateway, collector, analyzer, archiver processes)
on private RabbitMQ, Redis and PostgreSQL+pgvector, with FAKE vLLM upstreams, put through one
fault per test while documents are in flight, and judged against an independent ledger.

Each scenario feeds a fresh batch (half through `POST /v1/documents`, half through the AMQP
intake, unless it says otherwise), strikes when work is in flight (LLM calls open at the FAKE
upstream, an embedding batch open, or ingest requests open), ends the fault, waits for the
store, and then fails on any of: a fed document lost, stored twice, stored without its
analysis or embeddings, or with the wrong text; a row nobody fed; a document with more than
one chat call at the FAKE upstream (a kill -9 of the analyzer included: the gateway answers
the restarted analyzer's retry from the call the killed one left open, `sift_gateway.replay`);
anything of the batch dead-lettered on a transient fault; a message still queued 15 s after
the store settled; a fault that met no work in flight or that no service noticed; a SIGTERM
that did not exit 0 within 15 s; a service that died unasked.

Time: the long fault windows (Redis kills 15 s, PostgreSQL terminations 15 s, RabbitMQ cut
30 s, PostgreSQL stopped 60 s, gateway down 60 s) are multiplied by SIFT_FAULT_SCALE
(default 0.2: the whole matrix, start-up included, took ~5 min on the 2-core development
machine; never below 2 s).
SIFT_FAULT_SCALE=1 runs them full length:

    SIFT_FAULT_SCALE=1 SIFT_FAULT_RESULTS_DIR=docs/results uv run --frozen pytest tests/faults

writes docs/results/fault-matrix.json (default: pytest's base temp dir), one entry per
scenario: fed, stored, lost, doubled, LLM calls ÷ unique documents (FAKE upstream and gateway),
dead letters with reasons, recovery seconds (fault end → last document committed), fault
window, what was in flight and how the services saw it. Run only the matrix with `-m faults`,
or leave it out with `-m "not faults"`. The services' logs of a run are copied next to the
JSON (`fault-matrix-logs/`).

The real vLLM chat server killed mid-call and restarted is a scenario of its own, on a private
vLLM-CPU server (tests/faults/test_vllm_engine.py, also marked `vllm`: `-m "faults and not
vllm"` leaves it out); its row goes into the same JSON.
"""

import pytest

from tests.faults import faults
from tests.faults.conditions import (
    embedding_call_open,
    embedding_in_flight,
    feeding_in_flight,
    llm_call_open,
    llm_calls_in_flight,
)
from tests.faults.conftest import Matrix
from tests.faults.rig import LOCK_LEASE_MS, add_analyzer_replicas
from tests.faults.scenario import Fault, Feed


async def test_redis_connections_killed_every_200ms(matrix: Matrix) -> None:
    window = faults.scaled(15)
    strike = faults.redis_clients_killed(window, every_s=0.2)
    fault = Fault(
        "redis-client-kill", "CLIENT KILL of every Redis client every 200 ms", strike, window
    )
    await matrix.run(fault, Feed(spread_s=window + 2))


async def test_postgres_backends_terminated_every_half_second(matrix: Matrix) -> None:
    window = faults.scaled(15)
    strike = faults.postgres_backends_terminated(window, every_s=0.5)
    description = "pg_terminate_backend of every backend of the run every 0.5 s"
    fault = Fault("postgres-terminate", description, strike, window)
    await matrix.run(fault, Feed(spread_s=window + 2))


KILLED_WHEN = {
    "analyzer": llm_calls_in_flight,
    "archiver": embedding_in_flight,
    "collector": feeding_in_flight,
}


@pytest.mark.parametrize("service", ["analyzer", "archiver", "collector"])
async def test_kill9_mid_batch(matrix: Matrix, service: str) -> None:
    fault = Fault(
        f"kill9-{service}",
        f"kill -9 of the {service} mid-batch, restarted at once",
        faults.kill9(service),
        when=KILLED_WHEN[service],
        expect_seen=False,  # a killed process logs nothing; its exit code is the evidence
        check=faults.exited(-9),
    )
    feed = Feed(api=40, intake=0) if service == "collector" else None
    await matrix.run(fault, feed, embed_delay_s=0.5 if service == "archiver" else 0.1)


SIGTERM_WHEN = {
    "analyzer": llm_calls_in_flight,
    "archiver": embedding_in_flight,
    "gateway": llm_calls_in_flight,
    "collector": feeding_in_flight,
}


@pytest.mark.parametrize("service", ["analyzer", "archiver", "gateway", "collector"])
async def test_sigterm_with_calls_in_flight(matrix: Matrix, service: str) -> None:
    fault = Fault(
        f"sigterm-{service}",
        f"SIGTERM to the {service} with LLM calls in flight, restarted once it exited",
        faults.sigterm(service),
        when=SIGTERM_WHEN[service],
        expect_seen=False,  # a clean drain need not warn; exit 0 is the promise
        check=faults.exited(0),
    )
    feed = Feed(api=40, intake=0) if service == "collector" else None
    await matrix.run(
        fault, feed, chat_delay_s=1.0, embed_delay_s=0.5 if service == "archiver" else 0.1
    )


async def test_rabbitmq_node_restarted(matrix: Matrix) -> None:
    fault = Fault(
        "rabbitmq-restart",
        "the RabbitMQ node stopped and started again on its data",
        faults.rabbit_node_restarted,
    )
    await matrix.run(fault, Feed(spread_s=8))  # documents keep coming while it restarts


async def test_rabbitmq_connections_cut(matrix: Matrix) -> None:
    window = faults.scaled(30)
    fault = Fault(
        "rabbitmq-cut",
        "every service connection to RabbitMQ cut and new ones refused (TCP proxy)",
        faults.rabbit_connections_cut(window),
        window,
    )
    await matrix.run(fault, Feed(spread_s=window))


@pytest.mark.parametrize("lose_data", [False, True], ids=["keeping-data", "data-lost"])
async def test_redis_restarted(matrix: Matrix, lose_data: bool) -> None:
    name = "redis-restart-data-lost" if lose_data else "redis-restart"
    description = "Redis restarted" + (" with its data lost" if lose_data else " on its data")
    await matrix.run(Fault(name, description, faults.redis_restarted(lose_data=lose_data)))


async def test_postgres_stopped(matrix: Matrix) -> None:
    window = faults.scaled(60)
    fault = Fault(
        "postgres-stopped",
        "PostgreSQL stopped, started again after the window",
        faults.postgres_stopped(window),
        window,
    )
    await matrix.run(fault, Feed(spread_s=window))


async def test_gateway_down(matrix: Matrix) -> None:
    window = faults.scaled(60)
    fault = Fault(
        "gateway-down",
        "the LLM gateway stopped, started again after the window",
        faults.gateway_down(window),
        window,
    )
    await matrix.run(fault, Feed(spread_s=window))


async def test_poison_document_inside_an_archiver_batch(matrix: Matrix) -> None:
    fault = Fault(
        "poison-in-batch",
        "a document with a NUL in its body sent as document.collected among 20 others",
        faults.nothing,
        when=embedding_call_open,
        transient=False,
        expect_seen=False,
    )
    await matrix.run(fault, Feed(api=0, intake=0, collected=20, poison=1), embed_delay_s=0.3)


async def test_burst_of_copies_to_three_analyzers(matrix: Matrix) -> None:
    await add_analyzer_replicas(matrix.rig, 2)
    fault = Fault(
        "burst-3-analyzers",
        "3 copies of each document as document.collected to 3 analyzer replicas",
        faults.nothing,
        when=llm_call_open,
        expect_seen=False,
    )
    await matrix.run(fault, Feed(api=0, intake=0, collected=30, copies=3))


async def test_llm_call_slower_than_the_lock_lease(matrix: Matrix) -> None:
    await add_analyzer_replicas(matrix.rig, 2)
    call_s = LOCK_LEASE_MS / 1000 * 1.5
    fault = Fault(
        "slow-call-over-lease",
        f"every LLM call {call_s:.1f} s, longer than the {LOCK_LEASE_MS} ms lock lease; "
        "3 copies of each document to 3 analyzers",
        faults.calls_outlast_the_lease(LOCK_LEASE_MS, call_s),
        call_s,
        when=llm_call_open,
        expect_seen=False,
    )
    await matrix.run(fault, Feed(api=0, intake=0, collected=12, copies=3), chat_delay_s=call_s)

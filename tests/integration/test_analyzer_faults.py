"""Faults the analyzer must ride out: the gateway down for 20 s (real vLLM behind it once
it is back), a model answering invalid JSON (a FAKE upstream, as the real model answers
valid JSON under a schema), and Redis gone when a paid-for answer arrives (a private Redis)."""

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sift_analyzer import core
from sift_analyzer.app import Analyzer
from sift_analyzer.cache import ResultCache
from sift_analyzer.profiles import load_profiles
from sift_analyzer.settings import BUNDLED_PROFILES
from sift_common.contracts import Analysis, Document, DocumentCollected
from sift_common.messaging.topology import ARCHIVER_DOCUMENTS, DEAD_LETTER_REASON_HEADER
from sift_common.skip import AnalysisStateRepository
from sift_common.store import migrate
from sift_common.store.engine import create_engine, session_factory
from tests.support.analyzer import analyzed, analyzer_settings, gateway_on_port, running_analyzer
from tests.support.fake_upstream import Behaviour, FakeUpstream
from tests.support.gateway import StartFake, chat_profile, eventually, free_port, running_gateway
from tests.support.private_services import PrivateRedis
from tests.support.rabbit import delete_topology, drain, ready_count
from tests.support.vllm import VllmServers

pytestmark = pytest.mark.integration

REAL_TIMEOUTS = {"connect_s": 2, "ttft_s": 120, "stall_s": 60, "total_s": 300}
NEWS = load_profiles(BUNDLED_PROFILES).for_kind("news")
VALID_NEWS = json.dumps(
    {
        "summary": "Acme beat estimates.",
        "sentiment": "positive",
        "effect": "good",
        "companies": [{"name": "Acme Corp", "ticker": "ACME"}],
    }
)


def news(title: str) -> DocumentCollected:
    document = Document.create(
        source="test",
        title=title,
        body=f"{title}. Acme Corp shares rose 5% after strong results.",
        kind="news",
        language="en",
        url=f"https://news.example/{title.replace(' ', '-')}",
    )
    return DocumentCollected(correlation_id=document.id, document=document)


@pytest.fixture
async def migrated(fresh_database: str) -> str:
    await migrate.upgrade(fresh_database)
    return fresh_database


def sample(analyzer: Analyzer, name: str, **labels: str) -> float:
    return analyzer.metrics.registry.get_sample_value(name, labels) or 0.0


OUTAGE_S = 20


@pytest.mark.vllm
async def test_gateway_down_nothing_dead_lettered_all_analysed_after(
    rabbit_url: str,
    redis_url: str,
    namespace: str,
    migrated: str,
    vllm_servers: VllmServers,
    tmp_path: Path,
) -> None:
    port = free_port()
    profiles = {
        "local-chat": chat_profile(
            vllm_servers.chat_url, served_model=vllm_servers.chat_model, timeouts=REAL_TIMEOUTS
        )
    }
    settings = analyzer_settings(
        rabbit_url=rabbit_url,
        redis_url=redis_url,
        database_url=migrated,
        gateway_url=f"http://127.0.0.1:{port}",
        namespace=namespace,
        analyzer_retry_delays_ms="2000,5000",
        analyzer_max_retries=15,  # 2 + 14 x 5 s: well over the outage
    )
    events = [news("Acme beats estimates"), news("Acme opens a plant")]
    async with running_analyzer(settings) as analyzer:
        docs_spec = analyzer.topology.consumer_queues[0]
        for event in events:  # the gateway is not listening yet
            await analyzer.publish(event)
        await eventually(
            lambda: sample(analyzer, "sift_analyzer_retries_total", queue=docs_spec.name) >= 2,
            timeout=30,
        )
        # Long enough for several retries of each document (the fault matrix's row holds
        # the gateway down for its full 60 s at SIFT_FAULT_SCALE=1).
        await asyncio.sleep(OUTAGE_S)
        assert await ready_count(rabbit_url, analyzer.topology.dead_letter_queue(docs_spec)) == 0
        assert await ready_count(rabbit_url, analyzer.topology.work_queue(ARCHIVER_DOCUMENTS)) == 0
        retried = sample(analyzer, "sift_analyzer_retries_total", queue=docs_spec.name)
        assert retried >= 2 * len(events)

        async with gateway_on_port(tmp_path, profiles, {"chat": "local-chat"}, port):

            async def all_arrived() -> bool:
                queue = analyzer.topology.work_queue(ARCHIVER_DOCUMENTS)
                return await ready_count(rabbit_url, queue) >= len(events)

            await eventually(all_arrived, timeout=240, every=0.5)
        results = await analyzed(rabbit_url, analyzer.topology)
        assert sorted(r.document.id for r in results) == sorted(e.document.id for e in events)
        for result in results:
            NEWS.output_model.model_validate(result.analysis.result)
        assert await ready_count(rabbit_url, analyzer.topology.dead_letter_queue(docs_spec)) == 0
    await delete_topology(rabbit_url, analyzer.topology)


@pytest.fixture
async def fake_analyzer(
    rabbit_url: str, redis_url: str, namespace: str, migrated: str, fakes: StartFake, tmp_path: Path
) -> AsyncIterator[tuple[Analyzer, FakeUpstream]]:
    fake = await fakes(model="fake-chat")
    async with running_gateway(tmp_path, {"fake": chat_profile(fake.url)}, {"chat": "fake"}) as gw:
        settings = analyzer_settings(
            rabbit_url=rabbit_url,
            redis_url=redis_url,
            database_url=migrated,
            gateway_url=gw.url,
            namespace=namespace,
        )
        async with running_analyzer(settings) as analyzer:
            yield analyzer, fake
        await delete_topology(rabbit_url, analyzer.topology)


async def test_invalid_json_is_repaired_once(
    rabbit_url: str, fake_analyzer: tuple[Analyzer, FakeUpstream]
) -> None:
    analyzer, fake = fake_analyzer
    fake.script = [Behaviour(not_json=True), Behaviour(content=VALID_NEWS)]
    event = news("Acme beats estimates")
    await analyzer.publish(event)
    queue = analyzer.topology.work_queue(ARCHIVER_DOCUMENTS)

    async def arrived() -> bool:
        return await ready_count(rabbit_url, queue) >= 1

    await eventually(arrived, timeout=30)
    [result] = await analyzed(rabbit_url, analyzer.topology)
    assert result.analysis.result == json.loads(VALID_NEWS)
    assert result.analysis.score == 80  # "good" on the directional rubric
    chats = fake.chat_requests()
    assert len(chats) == 2
    repair = chats[1]["body"]["messages"]
    assert repair[-2] == {"role": "assistant", "content": "{not json at all"}
    assert "not valid JSON" in repair[-1]["content"]
    assert sample(analyzer, "sift_analyzer_analyses_total", profile="news", outcome="repaired")


async def test_output_still_invalid_after_repair_fails_with_a_reason_and_no_score(
    rabbit_url: str, namespace: str, migrated: str, fake_analyzer: tuple[Analyzer, FakeUpstream]
) -> None:
    analyzer, fake = fake_analyzer
    fake.default = Behaviour(not_json=True)
    event = news("Acme faces a probe")
    await analyzer.publish(event)
    docs_spec = analyzer.topology.consumer_queues[0]
    dlq = analyzer.topology.dead_letter_queue(docs_spec)

    async def dead_lettered() -> bool:
        return await ready_count(rabbit_url, dlq) >= 1

    await eventually(dead_lettered, timeout=30)
    [message] = await drain(rabbit_url, dlq)
    reason = str(message.headers[DEAD_LETTER_REASON_HEADER])
    assert "invalid after one repair" in reason
    assert "not valid JSON" in reason
    assert len(fake.chat_requests()) == 2  # the first answer and one repair, no more
    assert await ready_count(rabbit_url, analyzer.topology.work_queue(ARCHIVER_DOCUMENTS)) == 0
    engine = create_engine(migrated)
    try:
        key = core.work_key(event.document.id, "news", NEWS.prompt_version)
        state = await AnalysisStateRepository(session_factory(engine)).get(key)
    finally:
        await engine.dispose()
    assert state is not None
    assert state.last_success_at is None
    assert state.result_ref is None
    assert state.last_error is not None
    assert "invalid after one repair" in state.last_error
    assert not await analyzer.redis.exists(f"{namespace}sift:result:{key}")  # nothing cached


async def test_a_cached_result_not_yet_recorded_is_republished_without_an_llm_call(
    rabbit_url: str, fake_analyzer: tuple[Analyzer, FakeUpstream]
) -> None:
    """The crash window between caching a result and recording its publish: a redelivery
    re-publishes the cached analysis; the FAKE upstream shows no LLM call was made."""
    analyzer, fake = fake_analyzer
    event = news("Acme raises its dividend")
    key = core.work_key(event.document.id, "news", NEWS.prompt_version)
    cached = Analysis(
        analysis_type="news",
        prompt_version=NEWS.prompt_version,
        model="fake-chat",
        score=70,
        result=json.loads(VALID_NEWS),
    )
    await ResultCache(analyzer.redis, Analysis, prefix=analyzer.settings.namespace, ttl_s=60).put(
        key, cached
    )
    await analyzer.publish(event)
    queue = analyzer.topology.work_queue(ARCHIVER_DOCUMENTS)

    async def arrived() -> bool:
        return await ready_count(rabbit_url, queue) >= 1

    await eventually(arrived, timeout=30)
    [result] = await analyzed(rabbit_url, analyzer.topology)
    assert result.analysis == cached
    assert result.fencing_token is not None  # the holder's token: the store keeps the newest
    assert fake.chat_requests() == []
    assert sample(analyzer, "sift_analyzer_analyses_total", profile="news", outcome="republished")


REDIS_GONE_S = 10.0  # past the Redis client's own retries (at most ~7 s of backoff)
# Past the test lease (3 s) with room for Redis's own shutdown: no renewal can succeed.
ANSWER_AFTER_S = 8.0


async def test_an_answer_that_arrives_while_redis_is_gone_is_not_paid_for_twice(
    rabbit_url: str, namespace: str, migrated: str, fakes: StartFake, tmp_path: Path
) -> None:
    """Redis stops while the LLM call is open, stays away past the client's retries after the
    answer came, and comes back empty: the answer is published once, from the copy the analyzer
    kept, and the FAKE upstream saw one call (before the fix: a second call after Redis
    returned, the first answer thrown away with the cache write that failed). The answer comes
    after the lease ran out, so the publish must wait for the retry: an answer inside the lease
    was published at once, by chance, and the kept copy went untested."""
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    fake = await fakes(model="fake-chat")
    fake.default = Behaviour(content=VALID_NEWS, delay_s=ANSWER_AFTER_S)
    try:
        async with running_gateway(
            tmp_path, {"fake": chat_profile(fake.url)}, {"chat": "fake"}
        ) as gw:
            settings = analyzer_settings(
                rabbit_url=rabbit_url,
                redis_url=redis.url,
                database_url=migrated,
                gateway_url=gw.url,
                namespace=namespace,
            )
            async with running_analyzer(settings) as analyzer:
                event = news("Acme opens a plant")
                await analyzer.publish(event)
                await eventually(lambda: fake.open_calls == 1, timeout=30)
                await asyncio.to_thread(redis.stop)
                await eventually(lambda: fake.answered == 1, timeout=30)
                await asyncio.sleep(REDIS_GONE_S)
                redis.wipe()
                await asyncio.to_thread(redis.start)
                queue = analyzer.topology.work_queue(ARCHIVER_DOCUMENTS)

                async def arrived() -> bool:
                    return await ready_count(rabbit_url, queue) >= 1

                await eventually(arrived, timeout=60)
                [result] = await analyzed(rabbit_url, analyzer.topology)
                assert result.analysis.result == json.loads(VALID_NEWS)
                assert len(fake.chat_requests()) == 1
                republished = {"profile": "news", "outcome": "republished"}
                assert sample(analyzer, "sift_analyzer_analyses_total", **republished) == 1
            await delete_topology(rabbit_url, analyzer.topology)
    finally:
        redis.stop()

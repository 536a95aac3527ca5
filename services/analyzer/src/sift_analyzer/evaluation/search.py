"""Search through the archiver: the evaluated documents go in as `document.analyzed` events
(the archiver embeds and stores them as it would the pipeline's), then each paraphrase query
goes to its search API. The stored entities are read back too: publisher subjects must be in
the store, not only in the analyzer's output."""

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import httpx

from sift_analyzer.analysis import event_id_for
from sift_analyzer.entities import KnownEntities, canonical
from sift_analyzer.evaluation.dataset import EvalDocument, Query
from sift_common.contracts import Analysis, DocumentAnalyzed
from sift_common.messaging.broker import make_broker, publish_event
from sift_common.messaging.topology import Topology


class SearchUnavailableError(RuntimeError):
    """The archiver did not store the documents in time, or its API refused a request."""


async def publish_documents(
    rabbit_url: str, namespace: str, docs: dict[str, EvalDocument], analyses: dict[str, Analysis]
) -> None:
    broker = make_broker(rabbit_url)
    await broker.connect()
    topology = Topology(namespace=namespace)
    try:
        events = [
            DocumentAnalyzed(
                event_id=event_id_for(f"eval:{doc_id}:{analysis.prompt_version}"),
                correlation_id=docs[doc_id].document().id,
                document=docs[doc_id].document(),
                analysis=analysis,
            )
            for doc_id, analysis in analyses.items()
        ]
        await asyncio.gather(*(publish_event(broker, topology, event) for event in events))
    finally:
        await broker.stop()


class ArchiverApi:
    def __init__(self, url: str, api_key: str) -> None:
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers={"X-API-Key": api_key}, timeout=60.0
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(self, path: str, **params: Any) -> Any:
        response = await self._http.get(path, params=params)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise SearchUnavailableError(f"{path}: {response.status_code} {response.text[:300]}")
        return response.json()

    async def wait_stored(self, ids: Iterable[str], timeout_s: float) -> dict[str, Any]:
        """Each document as the archiver returns it, once every one is stored and embedded."""
        pending, stored = set(ids), {}
        deadline = time.monotonic() + timeout_s
        while pending:
            for doc_id in list(pending):
                found = await self.get(f"/v1/documents/{doc_id}")
                if found is not None and found.get("embedded_chunks"):
                    stored[doc_id] = found
                    pending.discard(doc_id)
            if pending and time.monotonic() > deadline:
                raise SearchUnavailableError(f"{len(pending)} documents not stored in time")
            if pending:
                await asyncio.sleep(2.0)
        return stored

    async def ranked(
        self, queries: list[Query], ids: dict[str, str], k: int
    ) -> dict[str, list[str]]:
        """Per query, the eval ids of the documents found, best first."""
        by_document = {document_id: eval_id for eval_id, document_id in ids.items()}
        out = {}
        for query in queries:
            found = await self.get("/v1/search", q=query.query, k=k)
            items = found["items"] if isinstance(found, dict) else []
            out[query.id] = [by_document.get(item["document_id"], "?") for item in items]
        return out


def subjects_stored(
    doc: EvalDocument, stored: dict[str, Any], known: KnownEntities
) -> tuple[int, int]:
    """(subjects, subjects found among the stored document's entities): the store keys an
    entity as `EntityRef.key` does, under the canonical name the analyzer resolved."""
    keys = {entity["entity_key"] for entity in stored.get("entities", [])}
    found = sum(canonical(known, subject, None).key in keys for subject in doc.subjects)
    return len(doc.subjects), found

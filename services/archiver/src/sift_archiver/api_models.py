"""What each query route answers, as the OpenAPI document (`/docs`) shows it.

The list routes answer `{"items": [...], "next_cursor": ...}` as JSON, or the items as CSV with
`format=csv` (the cursor then in `X-Next-Cursor`). Scores are directional: 0-100, 50 neutral.
"""

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

ItemT = TypeVar("ItemT", bound=BaseModel)


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


class ScoreBucket(BaseModel):
    bucket_start: datetime = Field(description="Start of the hour, day or week (UTC).")
    count: int = Field(description="Scored mentions of the entity in the bucket.")
    mean: float
    min: float
    max: float


class RankedEntity(BaseModel):
    entity_key: str = Field(description="`kind:normalized name`, the key of /v1/entities/{key}.")
    kind: str
    name: str
    ticker: str | None
    mean_score: float
    documents: int = Field(description="Scored documents in the window.")


class SearchHit(BaseModel):
    document_id: str
    title: str | None
    source: str
    kind: str
    language: str | None
    published_at: datetime | None
    summary: str | None = Field(description="The summary of the document's latest analysis.")
    distance: float = Field(description="Cosine distance of the nearest chunk to the query.")
    score: float = Field(description="1 - distance.")


class ScorePage(Page[ScoreBucket]):
    pass


class RankingPage(Page[RankedEntity]):
    pass


class SearchPage(Page[SearchHit]):
    pass


class DocumentAnalysis(BaseModel):
    analysis_type: str
    prompt_version: str
    model: str
    score: float | None
    result: dict[str, Any] = Field(description="The analysis as the profile's JSON schema says.")
    created_at: datetime


class MentionedEntity(BaseModel):
    entity_key: str
    kind: str
    name: str
    ticker: str | None
    score: float | None = Field(description="The document's score for this entity.")


class DocumentDetail(BaseModel):
    id: str
    source: str
    external_id: str | None
    url: str | None
    title: str | None
    body: str
    language: str | None
    kind: str
    published_at: datetime | None
    collected_at: datetime
    stored_at: datetime
    analyses: list[DocumentAnalysis] = Field(description="Every analysis, oldest first.")
    entities: list[MentionedEntity]
    embedded_chunks: int


class Digest(BaseModel):
    digest_type: str
    summary: str
    score: float | None
    details: dict[str, Any]
    document_count: int
    document_ids: list[str] | None = Field(description="The documents the digest was made from.")
    model: str
    prompt_version: str
    created_at: datetime


class EntityDetail(BaseModel):
    entity_key: str
    kind: str
    name: str
    ticker: str | None
    created_at: datetime
    documents: int = Field(description="Documents that mention the entity.")
    latest_digest: Digest | None
    digests: list[Digest] = Field(description="Digest history, newest first.")


class QueueDepth(BaseModel):
    messages: int | None = Field(description="Ready in the work queue; null: not declared yet.")
    dlq: int | None = Field(description="In its dead-letter queue; null: not declared yet.")


class StoreCounts(BaseModel):
    documents: int
    analyses: int
    embeddings: int
    entities: int
    digests: int


class Status(BaseModel):
    queues: dict[str, QueueDepth] = Field(description="Every consumer queue of the system.")
    store: StoreCounts

"""Pure translation of a batch of `document.analyzed` events into the rows the store upserts.

Duplicates inside one batch (a redelivery next to the original) are folded first: one
`INSERT ... ON CONFLICT DO UPDATE` statement may not touch the same row twice.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sift_archiver.chunking import Chunk, chunk_text, embedding_text
from sift_common.contracts import DocumentAnalyzed, EntityMention


def normalized_name(name: str) -> str:
    """The entity name as `EntityRef.key` folds it: casefolded, runs of space made one."""
    return " ".join(name.casefold().split())


@dataclass(frozen=True)
class ChunkRow:
    document_id: str
    chunk: Chunk
    source: str
    kind: str
    language: str | None
    published_at: datetime | None


@dataclass
class BatchRows:
    documents: list[tuple[Any, ...]] = field(default_factory=list)
    analyses: list[tuple[Any, ...]] = field(default_factory=list)
    # (kind, normalized_name) → (name, ticker)
    entities: dict[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict)
    # (document_id, (kind, normalized_name)) → (mention json, score)
    mentions: dict[tuple[str, tuple[str, str]], tuple[str, float | None]] = field(
        default_factory=dict
    )
    chunks: list[ChunkRow] = field(default_factory=list)


def batch_rows(events: list[DocumentAnalyzed], *, words: int, overlap: int) -> BatchRows:
    latest = {event.document.id: event for event in events}  # a later delivery wins
    analyses = {
        (e.document.id, e.analysis.analysis_type, e.analysis.prompt_version): e for e in events
    }
    rows = BatchRows()
    for event in latest.values():
        doc = event.document
        rows.documents.append(
            (doc.id, doc.content_hash, doc.source, doc.external_id, doc.url, doc.title,
             doc.body, doc.language, doc.kind, doc.published_at, doc.collected_at)
        )  # fmt: skip
        text = embedding_text(doc.title, doc.body)
        rows.chunks += [
            # Search filters by time use the publication time, or the collection time if unknown.
            ChunkRow(
                doc.id,
                chunk,
                doc.source,
                doc.kind,
                doc.language,
                doc.published_at or doc.collected_at,
            )
            for chunk in chunk_text(text, words=words, overlap=overlap)
        ]
    for (document_id, analysis_type, prompt_version), event in analyses.items():
        analysis = event.analysis
        rows.analyses.append(
            (document_id, analysis_type, prompt_version, analysis.model,
             json.dumps(analysis.result), analysis.score)
        )  # fmt: skip
        for mention in analysis.entities:
            _add_mention(rows, document_id, mention)
    return rows


def _add_mention(rows: BatchRows, document_id: str, mention: EntityMention) -> None:
    key = (mention.kind, normalized_name(mention.name))
    known = rows.entities.get(key)
    rows.entities[key] = (mention.name, mention.ticker or (known[1] if known else None))
    rows.mentions[(document_id, key)] = (mention.model_dump_json(), mention.score)


def keep_documents(rows: BatchRows, vectors: list[Any], stored: set[str]) -> list[Any]:
    """Drop, in place, what belongs to documents not stored (their content is another
    document's: `documents.content_hash` is unique); returns the vectors kept."""
    rows.documents = [row for row in rows.documents if row[0] in stored]
    rows.analyses = [row for row in rows.analyses if row[0] in stored]
    rows.mentions = {key: value for key, value in rows.mentions.items() if key[0] in stored}
    kept = [(c, v) for c, v in zip(rows.chunks, vectors, strict=True) if c.document_id in stored]
    rows.chunks = [c for c, _ in kept]
    return [v for _, v in kept]

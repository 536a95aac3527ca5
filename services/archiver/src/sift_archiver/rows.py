"""Pure translation of a batch of `document.analyzed` events into the rows the store upserts.

Duplicates inside one batch (a redelivery next to the original) are folded first: one
`INSERT ... ON CONFLICT DO UPDATE` statement may not touch the same row twice. Two analyses
with the same key fold as the store would: the highest lease fencing token wins (`outranks`).

NUL characters are removed from every text and JSON value: PostgreSQL refuses them in `text`
and `jsonb`, and one such value would fail its whole batch. The collector strips them when it
normalises a document, but `document.analyzed` may come from any publisher. The document id
and content hash are kept as published (they identify the document, NUL or not).
"""

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sift_archiver.chunking import Chunk, chunk_text, embedding_text
from sift_common.contracts import Document, DocumentAnalyzed, EntityMention

NUL = "\x00"


def without_nul(value: Any) -> Any:
    """`value` (text, or JSON-like data) with every NUL character removed, keys included."""
    if isinstance(value, str):
        return value.replace(NUL, "")
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_nul(item) for item in value]
    return value


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

    @property
    def key(self) -> tuple[str, int]:
        return self.document_id, self.chunk.index


AnalysisKey = tuple[str, str, str]  # document_id, analysis_type, prompt_version


@dataclass(frozen=True)
class FencedOut:
    """An analysis not written: a later lease holder's (higher token) is kept instead."""

    key: AnalysisKey
    token: int | None
    kept_token: int | None


@dataclass
class BatchRows:
    documents: list[tuple[Any, ...]] = field(default_factory=list)
    # (document_id, analysis_type, prompt_version, model, result json, gateway_profile,
    #  repaired, score, fencing_token)
    analyses: list[tuple[Any, ...]] = field(default_factory=list)
    # (kind, normalized_name) → (name, ticker)
    entities: dict[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict)
    # (document_id, (kind, normalized_name)) → (mention json, score)
    mentions: dict[tuple[str, tuple[str, str]], tuple[str, float | None]] = field(
        default_factory=dict
    )
    # the analysis each mention comes from, so a fenced-out analysis takes its links with it
    mentioned_by: dict[tuple[str, tuple[str, str]], AnalysisKey] = field(default_factory=dict)
    chunks: list[ChunkRow] = field(default_factory=list)
    fenced_out: list[FencedOut] = field(default_factory=list)  # folded inside the batch


def batch_rows(events: list[DocumentAnalyzed], *, words: int, overlap: int) -> BatchRows:
    latest = {event.document.id: event for event in events}  # a later delivery wins
    rows = BatchRows()
    for event in latest.values():
        _add_document(rows, event.document, words, overlap)
    for key, event in _fold_analyses(events, rows.fenced_out).items():
        analysis = event.analysis
        rows.analyses.append(
            (*key, without_nul(analysis.model), json.dumps(without_nul(analysis.result)),
             without_nul(analysis.gateway_profile), analysis.repaired, analysis.score,
             event.fencing_token)
        )  # fmt: skip
        for mention in analysis.entities:
            _add_mention(rows, key, mention)
    return rows


def outranks(token: int | None, other: int | None) -> bool:
    """Whether an analysis under lease `token` may replace one under `other` (equal: a replay,
    which may; no token never replaces one that has a token)."""
    return other is None or (token is not None and token >= other)


def _fold_analyses(
    events: list[DocumentAnalyzed], fenced_out: list[FencedOut]
) -> dict[AnalysisKey, DocumentAnalyzed]:
    """One event per analysis key: the highest fencing token, else the later delivery."""
    kept: dict[AnalysisKey, DocumentAnalyzed] = {}
    for event in events:
        analysis = event.analysis
        kind, version = without_nul([analysis.analysis_type, analysis.prompt_version])
        key = (event.document.id, kind, version)
        held = kept.get(key)
        if held is None or outranks(event.fencing_token, held.fencing_token):
            loser, kept[key] = held, event
        else:
            loser = event
        if loser is not None and not outranks(loser.fencing_token, kept[key].fencing_token):
            fenced_out.append(FencedOut(key, loser.fencing_token, kept[key].fencing_token))
    return kept


def _add_document(rows: BatchRows, doc: Document, words: int, overlap: int) -> None:
    source, title, body, language = without_nul([doc.source, doc.title, doc.body, doc.language])
    rows.documents.append(
        (doc.id, doc.content_hash, source, without_nul(doc.external_id), without_nul(doc.url),
         title, body, language, doc.kind, doc.published_at, doc.collected_at)
    )  # fmt: skip
    # Search filters by time use the publication time, or the collection time if unknown.
    published = doc.published_at or doc.collected_at
    rows.chunks += [
        ChunkRow(doc.id, chunk, source, doc.kind, language, published)
        for chunk in chunk_text(embedding_text(title, body), words=words, overlap=overlap)
    ]


def _add_mention(rows: BatchRows, analysis: AnalysisKey, mention: EntityMention) -> None:
    mention = mention.model_copy(update=without_nul(mention.model_dump(exclude={"score"})))
    key = (mention.kind, normalized_name(mention.name))
    known = rows.entities.get(key)
    rows.entities[key] = (mention.name, mention.ticker or (known[1] if known else None))
    rows.mentions[(analysis[0], key)] = (mention.model_dump_json(), mention.score)
    rows.mentioned_by[(analysis[0], key)] = analysis


def drop_fenced_out(rows: BatchRows, fenced_out: list[FencedOut]) -> None:
    """Drop, in place, the entity links of analyses the store fenced out, and the entities
    only they mentioned: a stale worker's scores must not overwrite its successor's."""
    if not fenced_out:
        return
    keys = {fenced.key for fenced in fenced_out}
    rows.mentions = {
        link: value for link, value in rows.mentions.items() if rows.mentioned_by[link] not in keys
    }
    linked = {entity for _, entity in rows.mentions}
    rows.entities = {key: value for key, value in rows.entities.items() if key in linked}


def keep_documents(rows: BatchRows, vectors: list[Any], stored: set[str]) -> list[Any]:
    """Drop, in place, what belongs to documents not stored (their content is another
    document's: `documents.content_hash` is unique); returns the vectors kept."""
    rows.documents = [row for row in rows.documents if row[0] in stored]
    rows.analyses = [row for row in rows.analyses if row[0] in stored]
    rows.mentions = {key: value for key, value in rows.mentions.items() if key[0] in stored}
    kept = [(c, v) for c, v in zip(rows.chunks, vectors, strict=True) if c.document_id in stored]
    rows.chunks = [c for c, _ in kept]
    return [v for _, v in kept]

"""The fault matrix's own record of what it fed, kept without any of Sift's code, and the
comparison of the store with it.

Every document carries a marker (`LGR<scenario tag>x<number>`) in its text, so it can be found
again wherever it travels: in the store, in a prompt at the FAKE upstream, in a dead letter.
The ledger knows each document's external id and the exact text the store must end up holding;
the store is read with plain SQL and judged against it: each fed document stored exactly once,
with one analysis and its embeddings, nothing else under the scenario's source.
"""

import re
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MARKER = re.compile(r"LGR[0-9a-f]{8}x[0-9]{4,}")  # 4 digits, more past 9999 documents
FILLER = (
    "The committee met on Tuesday to review the quarterly figures and the plan for next year. "
    "Members asked for a clearer schedule and agreed to publish the minutes within a week."
)


@dataclass(frozen=True)
class FedDocument:
    external_id: str
    marker: str
    title: str
    body: str  # as sent
    stored_body: str  # as the store must hold it (a NUL stripped, say)
    entry: str  # "api" | "intake" (AMQP) | "collected" (AMQP, straight to the analyzer)

    def incoming(self, source: str) -> dict[str, Any]:
        """The document as a publisher hands it over (the ingest API's and intake's shape)."""
        return {
            "source": source,
            "external_id": self.external_id,
            "title": self.title,
            "body": self.body,
            "kind": "generic",
            "language": "en",
        }


@dataclass
class Ledger:
    scenario: str
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    documents: dict[str, FedDocument] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return f"faults-{self.scenario}-{self.tag}"

    def add(self, count: int, entry: str, *, poison: bool = False) -> list[FedDocument]:
        """`count` new documents, each with its own marker and text. A poison document carries
        a NUL character in its body, which the store may only hold stripped."""
        added = []
        for _ in range(count):
            number = len(self.documents)
            marker = f"LGR{self.tag}x{number:04d}"
            body = f"{marker} Fault matrix document {number} of {self.scenario}. {FILLER}"
            stored = body
            if poison:
                body = f"{marker} Poison\u0000document {number} of {self.scenario}. {FILLER}"
                stored = body.replace("\u0000", "")
            document = FedDocument(
                f"{self.tag}-{number:04d}", marker, f"Document {number}", body, stored, entry
            )
            self.documents[marker] = document
            added.append(document)
        return added

    def markers(self) -> set[str]:
        return set(self.documents)

    def ours(self, text: str) -> list[str]:
        """The ledger's markers found in `text`."""
        return [marker for marker in MARKER.findall(text) if marker in self.documents]


@dataclass(frozen=True)
class StoredRow:
    """One `documents` row with what hangs off it (read by `STORE_QUERY`)."""

    document_id: str
    source: str
    external_id: str | None
    body: str
    stored_at: datetime
    analyses: int
    embeddings: int
    bad_vectors: int  # embedding rows whose dimension is not the store's


STORE_QUERY = """
SELECT d.id, d.source, d.external_id, d.body, d.stored_at,
       (SELECT count(*) FROM analyses a WHERE a.document_id = d.id) AS analyses,
       (SELECT count(*) FROM embeddings e WHERE e.document_id = d.id) AS embeddings,
       (SELECT count(*) FROM embeddings e WHERE e.document_id = d.id AND e.dim <> $3)
           AS bad_vectors
FROM documents d
WHERE d.source = $1 OR strpos(d.body, $2) > 0"""


@dataclass
class Verdict:
    """The store judged against the ledger."""

    fed: int
    stored_once: int = 0
    lost: list[str] = field(default_factory=list)  # external ids with no row
    doubled: list[str] = field(default_factory=list)  # more than one row or analysis
    incomplete: list[str] = field(default_factory=list)  # no analysis or no embedding
    wrong_body: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # rows the ledger never fed
    last_stored_at: datetime | None = None

    @property
    def complete(self) -> bool:
        return self.stored_once == self.fed and not (self.doubled or self.extra)

    def problems(self) -> list[str]:
        found = []
        for name in ("lost", "doubled", "incomplete", "wrong_body", "extra"):
            items = getattr(self, name)
            if items:
                found.append(f"{len(items)} {name}: {sorted(items)[:5]}")
        return found


def judge(ledger: Ledger, rows: Iterable[StoredRow], skip: Iterable[str] = ()) -> Verdict:
    """Compare store rows with the ledger; `skip`: markers expected *not* to be stored (a
    poison document that was dead-lettered alone)."""
    skipped = set(skip)
    expected = {m: d for m, d in ledger.documents.items() if m not in skipped}
    verdict = Verdict(fed=len(expected))
    by_marker: dict[str, list[StoredRow]] = {}
    for row in rows:
        found = ledger.ours(row.body)
        marker = found[0] if found else None
        if marker is None or row.source != ledger.source:
            verdict.extra.append(row.external_id or row.document_id)
            continue
        by_marker.setdefault(marker, []).append(row)
    for marker, document in ledger.documents.items():
        stored = by_marker.get(marker, [])
        if marker in skipped:
            if stored:
                verdict.extra.append(document.external_id)
            continue
        if not stored:
            verdict.lost.append(document.external_id)
            continue
        _judge_one(verdict, document, stored)
    return verdict


def _judge_one(verdict: Verdict, document: FedDocument, stored: list[StoredRow]) -> None:
    row = stored[0]
    if verdict.last_stored_at is None or row.stored_at > verdict.last_stored_at:
        verdict.last_stored_at = row.stored_at
    if len(stored) > 1 or row.analyses > 1:
        verdict.doubled.append(document.external_id)
    elif row.analyses == 0 or row.embeddings == 0 or row.bad_vectors:
        verdict.incomplete.append(document.external_id)
    elif row.body != document.stored_body or row.external_id != document.external_id:
        verdict.wrong_body.append(document.external_id)
    else:
        verdict.stored_once += 1


def calls_per_document(ledger: Ledger, texts: Iterable[str]) -> Counter[str]:
    """How many of `texts` (prompts seen by the FAKE upstream) name each ledger document."""
    counts: Counter[str] = Counter()
    for text in texts:
        for marker in set(ledger.ours(text)):
            counts[marker] += 1
    return counts

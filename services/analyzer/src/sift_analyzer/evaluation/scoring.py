"""The metrics of an evaluation run: pure functions over one record per labelled document.

Scores are directional (0–100, 50 neutral): a score of 55 or more points up, 45 or less down,
anything between is flat. A document whose analysis failed counts as wrong for every label
(it is not left out: a model that fails on hard documents must not look better for it).
Entities are compared by canonical identity (ticker, else folded canonical name) after the
same alias resolution the analyzer applies; a reported entity that the labels list as merely
mentioned is neither right nor wrong.
"""

import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sift_analyzer.entities import KnownEntities, canonical, identity
from sift_analyzer.evaluation.dataset import EvalDocument, Query
from sift_common.contracts import EntityMention, EntityRef

UP_FROM, DOWN_TO = 55.0, 45.0
SENTIMENTS = ("positive", "negative", "neutral", "mixed")


@dataclass
class DocRecord:
    """What one analysis of one labelled document gave."""

    doc: EvalDocument
    valid_first: bool
    valid: bool
    calls: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    sentiment: str | None = None
    score: float | None = None
    entities: list[EntityMention] = field(default_factory=list)
    unchecked: list[EntityMention] = field(default_factory=list)  # the model's, as it said them
    refused: Counter[str] = field(default_factory=Counter)
    error: str | None = None


def record_json(record: DocRecord) -> dict[str, Any]:
    """One document's answer beside its labels, to read where a model goes wrong."""
    labels = record.doc.labels
    return {
        "id": record.doc.id,
        "sentiment": [labels.sentiment, record.sentiment],
        "direction": [labels.direction, direction(record.score)],
        "score": record.score,
        "entities": [e.name for e in record.entities],
        "refused": dict(record.refused),
        "error": record.error,
    }


def direction(score: float | None) -> str | None:
    if score is None:
        return None
    return "up" if score >= UP_FROM else "down" if score <= DOWN_TO else "flat"


def macro_f1(gold: Sequence[str], predicted: Sequence[str | None]) -> float:
    """Mean F1 over the classes that occur in the gold labels."""
    scores = []
    for label in sorted(set(gold)):
        tp = sum(g == label and p == label for g, p in zip(gold, predicted, strict=True))
        fp = sum(g != label and p == label for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == label and p != label for g, p in zip(gold, predicted, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return statistics.fmean(scores) if scores else 0.0


def _keys(known: KnownEntities, refs: Iterable[EntityRef]) -> set[str]:
    return {identity(canonical(known, ref, None)) for ref in refs}


def entity_counts(
    known: KnownEntities, record: DocRecord, entities: list[EntityMention]
) -> tuple[int, int, int, int, int]:
    """(right, reported and judged, labelled, subjects, subjects found) for one document."""
    labels = record.doc.labels
    gold = _keys(known, labels.entities)
    neutral = _keys(known, labels.also_mentioned) - gold
    got = _keys(known, entities)
    subjects = _keys(known, record.doc.subjects)
    judged = got - neutral
    return len(judged & gold), len(judged), len(gold), len(subjects), len(subjects & got)


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def analysis_metrics(known: KnownEntities, records: Sequence[DocRecord]) -> dict[str, Any]:
    n = len(records)
    if not n:
        return {"documents": 0}
    gold_sent = [r.doc.labels.sentiment for r in records]
    pred_sent = [r.sentiment if r.valid else None for r in records]
    counts = [entity_counts(known, r, r.entities) for r in records]
    right, judged, labelled, subjects, found = (sum(c[i] for c in counts) for i in range(5))
    raw = [entity_counts(known, r, r.unchecked) for r in records]
    raw_right, raw_judged = sum(c[0] for c in raw), sum(c[1] for c in raw)
    agree = sum(direction(r.score) == r.doc.labels.direction for r in records if r.valid)
    return {
        "documents": n,
        "sentiment_accuracy": _ratio(
            sum(g == p for g, p in zip(gold_sent, pred_sent, strict=True)), n
        ),
        "sentiment_macro_f1": round(macro_f1(gold_sent, pred_sent), 4),
        "direction_agreement": _ratio(agree, n),
        "entity_precision": _ratio(right, judged),
        "entity_recall": _ratio(right, labelled),
        "entity_precision_unchecked": _ratio(raw_right, raw_judged),
        "entity_recall_unchecked": _ratio(raw_right, labelled),
        "subjects_found": _ratio(found, subjects),
        "schema_valid_first": _ratio(sum(r.valid_first for r in records), n),
        "schema_valid_after_repair": _ratio(sum(r.valid for r in records), n),
        "llm_calls_per_document": _ratio(sum(r.calls for r in records), n),
        "prompt_tokens_per_document": _ratio(sum(r.prompt_tokens for r in records), n),
        "completion_tokens_per_document": _ratio(sum(r.completion_tokens for r in records), n),
        "seconds_per_call_mean": _ratio(sum(r.seconds for r in records), n),
        "mentions_refused": dict(sum((r.refused for r in records), Counter())),
        "failed": [r.doc.id for r in records if not r.valid],
    }


def completion_tokens(records: Sequence[DocRecord]) -> dict[str, int]:
    """The first answer's length distribution, for sizing max_tokens per profile."""
    values = sorted(r.completion_tokens // max(r.calls, 1) for r in records if r.calls)
    if not values:
        return {}

    def at(q: float) -> int:
        return values[min(len(values) - 1, int(q * len(values)))]

    return {"p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": values[-1]}


Group = Callable[[EvalDocument], str]
GROUPS: dict[str, Group] = {
    "language": lambda doc: doc.language,
    "kind": lambda doc: doc.kind,
    "language_kind": lambda doc: f"{doc.language}-{doc.kind}",
}


def grouped(known: KnownEntities, records: Sequence[DocRecord]) -> dict[str, Any]:
    """All documents, then by language, by kind and by both."""
    out: dict[str, Any] = {"all": analysis_metrics(known, records)}
    for name, key in GROUPS.items():
        buckets: dict[str, list[DocRecord]] = {}
        for record in records:
            buckets.setdefault(key(record.doc), []).append(record)
        out[name] = {k: analysis_metrics(known, v) for k, v in sorted(buckets.items())}
    out["completion_tokens"] = {
        k: completion_tokens([r for r in records if GROUPS["language_kind"](r.doc) == k])
        for k in sorted({GROUPS["language_kind"](r.doc) for r in records})
    }
    return out


def search_metrics(
    queries: Sequence[Query], ranked: dict[str, list[str]], languages: dict[str, str]
) -> dict[str, Any]:
    """hit@1 and hit@3 for each query group: same language per language, and cross-language
    (the query's language is not its document's)."""
    buckets: dict[str, list[tuple[Query, list[str]]]] = {}
    for query in queries:
        doc_language = languages[query.relevant[0]]
        group = query.language if doc_language == query.language else f"cross:{query.language}"
        buckets.setdefault(group, []).append((query, ranked.get(query.id, [])))
    return {group: _hits(items) for group, items in sorted(buckets.items())}


def _hits(items: list[tuple[Query, list[str]]]) -> dict[str, Any]:
    def hit(k: int) -> float:
        return sum(bool(set(q.relevant) & set(r[:k])) for q, r in items) / len(items)

    missed = [q.id for q, r in items if not set(q.relevant) & set(r[:3])]
    return {
        "queries": len(items),
        "hit@1": round(hit(1), 4),
        "hit@3": round(hit(3), 4),
        "missed@3": missed,
    }

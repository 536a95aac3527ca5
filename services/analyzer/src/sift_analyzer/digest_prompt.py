"""The digest's prompt and the grounding of its answer: pure functions over the context.

Each context document is shown with its own score for the entity and a short text (the
title, then its analysis summary or else the opening of its body), and the list
ends with the documents' mean score, which the rubric in profiles.yaml tells the model to
stay near. The same texts are what the summary is checked against (`grounding`).
"""

import json
import statistics
from collections import Counter
from collections.abc import Callable
from typing import Any

from sift_analyzer import core, grounding
from sift_analyzer.core import Check, Messages
from sift_analyzer.digest_store import ContextDocument
from sift_analyzer.profiles import DigestProfile
from sift_common.contracts import EntityRef


def mean_score(documents: list[ContextDocument]) -> float | None:
    scores = [doc.score for doc in documents if doc.score is not None]
    return round(statistics.fmean(scores), 1) if scores else None


def document_text(doc: ContextDocument, limit: int) -> str:
    """What the model reads of a document: its title, then its analysis summary or, when it
    has none (reviews), the opening of its body. Summaries keep the prompt short: eight
    Korean openings alone would fill a small model's context."""
    parts = [doc.title, doc.summary or doc.body[:limit]]
    return " — ".join(part.strip() for part in parts if part and part.strip())


def documents_block(profile: DigestProfile, documents: list[ContextDocument]) -> str:
    lines = [
        f"{n}. [score {_points(doc.score)}] {document_text(doc, profile.max_document_chars)}"
        for n, doc in enumerate(documents, 1)
    ]
    scored = sum(doc.score is not None for doc in documents)
    mean = mean_score(documents)
    lines.append(
        f"Mean score of these documents: {_points(mean)} ({scored} of {len(documents)} scored)"
    )
    return "\n".join(lines)


def _points(score: float | None) -> str:
    return "none" if score is None else f"{score:.0f}"


def entity_label(entity: EntityRef) -> str:
    return f"{entity.name} ({entity.kind}{', ' + entity.ticker if entity.ticker else ''})"


def digest_messages(
    profile: DigestProfile, entity: EntityRef, documents: list[ContextDocument]
) -> Messages:
    """System prompt, the profile's worked example in the documents' main language (its
    `title` is the entity, its `body` the documents block), then the entity's documents. A
    small model copies the example's shape: without one, SmolLM2 answers "Suhmary"."""
    messages = [{"role": "system", "content": profile.system}]
    for example in core.examples_for(profile, main_language(documents)):
        shown = profile.template.format(entity=example.title or "", documents=example.body)
        answer = json.dumps(example.answer, ensure_ascii=False)
        messages += [
            {"role": "user", "content": shown},
            {"role": "assistant", "content": answer},
        ]
    prompt = profile.template.format(
        entity=entity_label(entity), documents=documents_block(profile, documents)
    )
    return [*messages, {"role": "user", "content": prompt}]


def main_language(documents: list[ContextDocument]) -> str | None:
    languages = Counter(doc.language.split("-")[0].lower() for doc in documents if doc.language)
    return languages.most_common(1)[0][0] if languages else None


def summary_check(
    profile: DigestProfile, entity: EntityRef, documents: list[ContextDocument]
) -> Callable[[str], str | None]:
    """The grounding check of a summary against exactly the texts the model was shown."""
    sources = [document_text(doc, profile.max_document_chars) for doc in documents]
    names = [entity.name, entity.ticker or ""]
    examples = [
        f"{example.title or ''} {example.body} {example.answer.get(profile.summary_field, '')}"
        for example in profile.examples
    ]
    return lambda summary: grounding.ungrounded(summary, sources, names, examples)


def answer_check(
    profile: DigestProfile, entity: EntityRef, documents: list[ContextDocument]
) -> Check:
    """`summary_check` on an answer: an ungrounded summary is then invalid output, and
    StructuredLlm's one repair turn (the model sees its answer and the reason) covers it."""
    check, field = summary_check(profile, entity, documents), profile.summary_field
    return lambda result: check(str(result[field]))


def answer_details(
    profile: DigestProfile, result: dict[str, Any], record: dict[str, Any]
) -> dict[str, Any]:
    """The digest's `details`: the answer's fields other than the summary and the score
    (those are the event's own), then `record` (how the score was grounded, as of when)."""
    own = {profile.summary_field, profile.score_field}
    return {**{k: v for k, v in result.items() if k not in own}, **record}

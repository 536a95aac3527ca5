"""The pure core of an analysis: prompts, output validation, entities, score, priority.

No I/O here: the handlers pass documents and model answers in and get messages, validated
results or a reason out.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from sift_analyzer.profiles import DocumentProfile, EntitySpec, PromptProfile
from sift_common.contracts import Document, EntityMention, Priority
from sift_common.gateway_client import Priority as GatewayPriority

Messages = list[dict[str, str]]
MAX_REASON_CHARS = 500

_GATEWAY_PRIORITY: dict[Priority, GatewayPriority] = {
    "realtime": "interactive",
    "normal": "normal",
    "backfill": "backfill",
}


def gateway_priority(
    priority: Priority, published_at: datetime | None, now: datetime, stale_after: timedelta
) -> GatewayPriority:
    """The gateway's class: realtime → interactive, backfill → backfill; a "normal" document
    published long ago is backfill too, so fresh documents go first."""
    if priority == "normal" and published_at is not None and now - published_at > stale_after:
        return "backfill"
    return _GATEWAY_PRIORITY[priority]


def work_key(document_id: str, analysis_type: str, prompt_version: str) -> str:
    return f"analysis:{document_id}:{analysis_type}:{prompt_version}"


def document_messages(profile: DocumentProfile, document: Document) -> Messages:
    body = document.body[: profile.max_body_chars]
    prompt = profile.template.format(
        title=document.title or "(none)",
        body=body,
        language=_language_name(document.language),
    )
    return [{"role": "system", "content": profile.system}, {"role": "user", "content": prompt}]


def _language_name(code: str | None) -> str:
    names = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian"}
    if code is None:
        return "the document's language"
    return names.get(code.split("-")[0].lower(), f"the language '{code}'")


def repair_messages(original: Messages, answer: str, problem: str) -> Messages:
    """One follow-up turn showing the model its invalid answer and what was wrong with it."""
    return [
        *original,
        {"role": "assistant", "content": answer[:2000]},
        {
            "role": "user",
            "content": (
                f"That answer is invalid: {problem[:MAX_REASON_CHARS]}. Reply again with only "
                "one JSON object that matches the required schema."
            ),
        },
    ]


class InvalidOutputError(ValueError):
    """The model's answer is not JSON, or not valid under the profile's schema."""


def validate_output(
    profile: PromptProfile, content: str, finish_reason: str | None
) -> dict[str, Any]:
    """The answer as a schema-valid dict, or InvalidOutputError saying what is wrong."""
    try:
        raw = json.loads(content)
    except json.JSONDecodeError as exc:
        cut = " (cut off at max_tokens)" if finish_reason == "length" else ""
        raise InvalidOutputError(f"not valid JSON{cut}: {exc}") from None
    try:
        model: BaseModel = profile.output_model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or '<root>'}: {error['msg']}"
            for error in exc.errors()[:5]
        )
        raise InvalidOutputError(f"does not match the schema: {problems}") from None
    result: dict[str, Any] = model.model_dump(mode="json")
    return result


def overall_score(profile: PromptProfile, result: dict[str, Any]) -> float | None:
    if profile.score_field is None:
        return None
    value = result.get(profile.score_field)
    return float(value) if isinstance(value, int | float) else None


def mentions(spec: EntitySpec | None, result: dict[str, Any]) -> list[EntityMention]:
    """The entities a result names ("" tickers read as unknown). Names without a letter
    (a small model's "100") are dropped: they would become entities nobody can look up."""
    if spec is None:
        return []
    items = result.get(spec.list, []) if spec.list is not None else [result]
    found: dict[str, EntityMention] = {}
    for item in items if isinstance(items, list) else []:
        mention = _mention(spec, item)
        if mention is not None:
            found.setdefault(mention.key, mention)  # one mention per entity
    return list(found.values())


def _mention(spec: EntitySpec, item: dict[str, Any]) -> EntityMention | None:
    name = str(item.get(spec.name) or "").strip()
    kind = spec.kind or str(item.get(spec.kind_field or "") or "").strip()
    if not any(char.isalpha() for char in name) or not kind:
        return None
    ticker = str(item.get(spec.ticker) or "").strip() if spec.ticker else ""
    score = item.get(spec.score) if spec.score else None
    return EntityMention(
        kind=kind,
        name=name[:300],
        ticker=ticker[:20] or None,
        score=float(score) if isinstance(score, int | float) else None,
    )


@dataclass(frozen=True)
class Outcome:
    """A finished attempt: the valid result, or the reason it failed."""

    result: dict[str, Any] | None
    reason: str | None
    model: str
    llm_calls: int

"""The pure core of an analysis: prompts, output validation, entities, score, priority.

No I/O here: the handlers pass documents and model answers in and get messages, validated
results or a reason out.
"""

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from sift_analyzer import entities
from sift_analyzer.entities import KnownEntities
from sift_analyzer.profiles import DocumentProfile, EntitySpec, Example, PromptProfile
from sift_common.contracts import Analysis, Document, EntityMention, Priority
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
    """System prompt, the profile's worked examples in the document's language (English when
    it has none in that language), then the document."""
    messages = [{"role": "system", "content": profile.system}]
    for example in examples_for(profile, document.language):
        messages += [
            {
                "role": "user",
                "content": _prompt(profile, example.title, example.body, example.language),
            },
            {"role": "assistant", "content": json.dumps(example.answer, ensure_ascii=False)},
        ]
    body = document.body[: profile.max_body_chars]
    if profile.max_body_tokens is not None:
        body = clip_to_tokens(body, profile.max_body_tokens)
    messages.append(
        {"role": "user", "content": _prompt(profile, document.title, body, document.language)}
    )
    return messages


# Tokens a character costs, roughly, in the small models' BPE vocabularies: Hangul, kana and
# CJK ideographs run to 2 or more a character (Korean news measured 2.0 on average, spaces
# included), Latin text about a quarter.
_WIDE_TOKENS, _NARROW_TOKENS = 2.2, 0.3


def clip_to_tokens(text: str, budget: int) -> str:
    """The longest prefix of `text` whose estimated token count stays within `budget`."""
    spent = 0.0
    for index, char in enumerate(text):
        spent += _WIDE_TOKENS if ord(char) >= 0x1100 and char.isalpha() else _NARROW_TOKENS
        if spent > budget:
            return text[:index]
    return text


def examples_for(profile: PromptProfile, language: str | None) -> list[Example]:
    base = (language or "en").split("-")[0].lower()
    same = [example for example in profile.examples if example.language == base]
    return same or [example for example in profile.examples if example.language == "en"]


def _prompt(profile: DocumentProfile, title: str | None, body: str, language: str | None) -> str:
    return profile.template.format(
        title=title or "(none)", body=body, language=language_name(language)
    )


LANGUAGE_NAMES = {
    "en": "English",
    "ko": "Korean",
    "ja": "Japanese",
    "zh": "Chinese",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
}


def language_name(code: str | None) -> str:
    """The language's English name for a prompt: "write the summary in Korean"."""
    if code is None:
        return "the document's language"
    return LANGUAGE_NAMES.get(code.split("-")[0].lower(), f"the language '{code}'")


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


Check = Callable[[dict[str, Any]], str | None]  # what is wrong with a schema-valid answer


def validate_output(
    profile: PromptProfile, content: str, finish_reason: str | None, check: Check | None = None
) -> dict[str, Any]:
    """The answer as a schema-valid dict that also passes `check` (a caller's rule beyond the
    schema, e.g. a digest grounded in its documents), or InvalidOutputError saying why not."""
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
    if check is not None and (problem := check(result)) is not None:
        raise InvalidOutputError(problem)
    return result


def overall_score(profile: PromptProfile, result: dict[str, Any]) -> float | None:
    """0–100, 50 neutral: the profile's score field, through its score_map when it has one."""
    if profile.score_field is None:
        return None
    value = result.get(profile.score_field)
    if profile.score_map is not None:
        return profile.score_map.get(value) if isinstance(value, str) else None
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


def analysis_of(
    profile: DocumentProfile,
    document: Document,
    result: dict[str, Any],
    model: str,
    known: KnownEntities,
    *,
    gateway_profile: str | None = None,
    repaired: bool | None = None,
) -> tuple[Analysis, Counter[str]]:
    """The analysis to publish for a valid result, and the model's mentions refused (by
    reason): the publisher's subjects, then the mentions that pass the entity checks. The
    gateway profile and the repair flag let `sift report` compare the arms of an A/B split."""
    score = overall_score(profile, result)
    spec = profile.entities
    selection = entities.select(
        known,
        subjects=document.subjects,
        mentions=mentions(spec, result),
        text=f"{document.title or ''}\n{document.body}",
        kinds=spec.kinds if spec is not None else frozenset(),
        score=score,
    )
    analysis = Analysis(
        analysis_type=profile.analysis_type,
        prompt_version=profile.prompt_version,
        model=model,
        score=score,
        result=result,
        entities=selection.mentions,
        gateway_profile=gateway_profile,
        repaired=repaired,
    )
    return analysis, selection.refused


@dataclass(frozen=True)
class Outcome:
    """A finished attempt: the valid result, or the reason it failed."""

    result: dict[str, Any] | None
    reason: str | None
    model: str
    llm_calls: int

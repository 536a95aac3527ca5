"""The shipped profiles leave room for every answer their schemas admit.

vLLM's xgrammar bounds each string while the model writes it, so the longest answer a schema
admits is known before any call. A model that fills every bound with token-dense Latin text
(a document's identifier repeated, "1:1:1:") writes about 1.33 characters a token (the bundled
135M model on the fault matrix's ledger documents, 2026-12); an answer cut off at max_tokens is
invalid JSON and, after one repair, a dead letter. Korean runs to 3 tokens a character when the
model loops (a 100-character summary took ~300 tokens): a document's summary must leave room
for that and a short rest. Each document profile must also fit its clipped body and its answer
into the bundled model's context.
"""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from sift_analyzer.profiles import PromptProfile, load_profiles

PROFILES = load_profiles(
    Path(__file__).parents[3] / "services/analyzer/src/sift_analyzer/profiles.yaml"
)
DENSEST_CHARS_PER_TOKEN = 1.33
KOREAN_TOKENS_PER_CHAR = 3  # a Hangul syllable is 3 bytes of the byte-level vocabulary
REST_TOKENS = 96  # the other fields of an answer whose summary looped
CONTEXT_TOKENS = 2048  # SmolLM2's
PROMPT_ALLOWANCE_TOKENS = 400  # system prompt, template and title around the clipped body
REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")


def longest_string(schema: dict[str, Any]) -> int:
    if "enum" in schema:
        return max(len(json.dumps(value)) for value in schema["enum"])
    if "maxLength" in schema:
        return int(schema["maxLength"]) + 2
    pattern = schema.get("pattern", "")
    bounds = [int(high or low) for low, high in REPEAT.findall(pattern)]
    unbounded = not bounds or any(high == "" for _, high in REPEAT.findall(pattern))
    assert not unbounded, f"unbounded string {schema}"
    return sum(bounds) + 2


def longest_answer(schema: dict[str, Any]) -> int:
    """Characters of the longest compact JSON the schema admits."""
    kind = schema.get("type")
    if kind == "string" or "enum" in schema:
        return longest_string(schema)
    if kind == "integer":
        return len(str(schema["maximum"]))
    if kind == "array":
        items = int(schema["maxItems"])
        return 2 + items * (longest_answer(schema["items"]) + 1)
    assert kind == "object", schema
    fields = schema["properties"].items()
    return 2 + sum(len(json.dumps(key)) + 2 + longest_answer(value) for key, value in fields)


def every_profile() -> list[tuple[str, PromptProfile]]:
    return [*PROFILES.documents.items(), ("digest", PROFILES.digest)]


@pytest.mark.parametrize(("name", "profile"), every_profile(), ids=lambda p: str(p)[:8])
def test_the_longest_admitted_answer_fits_in_max_tokens(name: str, profile: PromptProfile) -> None:
    needed = longest_answer(profile.json_schema) / DENSEST_CHARS_PER_TOKEN
    assert profile.max_tokens >= needed, (
        f"{name}: max_tokens {profile.max_tokens} < {needed:.0f} tokens that its schema's "
        "longest answer may take"
    )


@pytest.mark.parametrize("kind", sorted(PROFILES.documents))
def test_a_looping_korean_summary_fits_with_a_short_rest(kind: str) -> None:
    profile = PROFILES.for_kind(kind)  # type: ignore[arg-type]
    summary = longest_string(profile.json_schema["properties"]["summary"]) - 2
    needed = summary * KOREAN_TOKENS_PER_CHAR + REST_TOKENS
    assert profile.max_tokens >= needed, f"{kind}: {profile.max_tokens} < {needed}"


@pytest.mark.parametrize("kind", sorted(PROFILES.documents))
def test_a_clipped_body_and_the_answer_fit_in_the_context(kind: str) -> None:
    profile = PROFILES.for_kind(kind)  # type: ignore[arg-type]
    assert profile.max_body_tokens is not None, f"{kind}: a long body would overflow the context"
    used = profile.max_body_tokens + profile.max_tokens + PROMPT_ALLOWANCE_TOKENS
    assert used <= CONTEXT_TOKENS, f"{kind}: {used} tokens"


def test_the_longest_answer_counts_every_bound() -> None:
    schema = {
        "type": "object",
        "properties": {
            "s": {"type": "string", "pattern": "^[^\\n]{1,10}$"},
            "e": {"type": "string", "enum": ["ab", "abcd"]},
            "n": {"type": "integer", "minimum": 0, "maximum": 100},
            "l": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 3}},
        },
    }
    # {"s":"..........","e":"abcd","n":100,"l":["...","...",]} (a trailing comma counted)
    assert longest_answer(schema) == 2 + (5 + 12) + (5 + 6) + (5 + 3) + (5 + 2 + 2 * 6)

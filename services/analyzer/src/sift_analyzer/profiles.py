"""Analysis profiles loaded from YAML: prompt template, JSON schema, model, prompt version.

Loading builds each profile's pydantic output model, so a schema the validator cannot handle,
a template naming an unknown placeholder or a missing document kind stops start-up with the
file and the profile named.
"""

import string
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from sift_analyzer.schema_model import SchemaError, model_from_schema
from sift_common.contracts import DocumentKind
from sift_common.errors import ConfigError

DOCUMENT_PLACEHOLDERS = frozenset({"title", "body", "language"})
DIGEST_PLACEHOLDERS = frozenset({"entity", "documents"})
KINDS: tuple[DocumentKind, ...] = ("news", "review", "generic")


class EntitySpec(BaseModel):
    """Where a profile's output names its entities: a list of objects, or top-level fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    list: str | None = None
    name: str
    kind: str | None = None  # a constant kind ...
    kind_field: str | None = None  # ... or the field holding it
    ticker: str | None = None
    score: str | None = None
    # The kinds a model's mention may have to be stored (subjects are always stored).
    kinds: frozenset[str] = frozenset({"company", "business"})

    @model_validator(mode="after")
    def _one_kind(self) -> "EntitySpec":
        if (self.kind is None) == (self.kind_field is None):
            raise ValueError("give exactly one of kind or kind_field")
        return self


class Example(BaseModel):
    """A worked example shown to the model before the document (few-shot), in a language."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    language: str = Field(min_length=2)
    title: str | None = None
    body: str = Field(min_length=1)
    answer: dict[str, Any]


class PromptProfile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt_version: str = Field(min_length=1)
    model: str = Field(min_length=1)
    max_tokens: int = Field(gt=0, le=4096)
    temperature: float = Field(default=0.0, ge=0, le=2)
    system: str
    template: str
    json_schema: dict[str, Any] = Field(alias="schema")
    score_field: str | None = None
    # When set, the score field is a label (e.g. "good") and Sift maps it to 0–100 itself:
    # a small model picks a word more reliably than it places a number on a scale.
    score_map: dict[str, float] | None = None
    examples: list[Example] = Field(default_factory=list)
    _output: type[BaseModel] = PrivateAttr()

    @property
    def output_model(self) -> type[BaseModel]:
        return self._output

    def _check(self, placeholders: frozenset[str], name: str) -> None:
        used = {field for _, field, _, _ in string.Formatter().parse(self.template) if field}
        if unknown := used - placeholders:
            raise ValueError(f"template uses unknown placeholders {sorted(unknown)}")
        self._output = model_from_schema(self.json_schema, name)
        for n, example in enumerate(self.examples, 1):
            try:
                self._output.model_validate(example.answer)
            except ValidationError as exc:
                raise ValueError(f"example {n} does not match the schema: {exc}") from None
        if self.score_map is not None:
            self._check_score_map()

    def _check_score_map(self) -> None:
        assert self.score_map is not None
        field = self.json_schema.get("properties", {}).get(self.score_field or "", {})
        labels = set(field.get("enum", []))
        if set(self.score_map) != labels:
            raise ValueError(
                f"score_map must map exactly the enum of {self.score_field!r} ({sorted(labels)})"
            )
        if not all(0 <= score <= 100 for score in self.score_map.values()):
            raise ValueError("score_map scores must lie in 0-100")


class DocumentProfile(PromptProfile):
    analysis_type: str = Field(min_length=1)
    max_body_chars: int = Field(default=3000, gt=0)
    max_body_tokens: int | None = Field(default=None, gt=0)  # estimated: core.clip_to_tokens
    entities: EntitySpec | None = None

    @model_validator(mode="after")
    def _valid(self) -> "DocumentProfile":
        self._check(DOCUMENT_PLACEHOLDERS, self.analysis_type)
        return self


class DigestProfile(PromptProfile):
    digest_type: str = Field(min_length=1)
    summary_field: str = "summary"
    max_document_chars: int = Field(default=400, gt=0)

    @model_validator(mode="after")
    def _valid(self) -> "DigestProfile":
        self._check(DIGEST_PLACEHOLDERS, f"digest_{self.digest_type}")
        return self


class Profiles(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    documents: dict[DocumentKind, DocumentProfile]
    digest: DigestProfile

    @model_validator(mode="after")
    def _every_kind(self) -> "Profiles":
        if missing := [kind for kind in KINDS if kind not in self.documents]:
            raise ValueError(f"no profile for document kinds {missing}")
        return self

    def for_kind(self, kind: DocumentKind) -> DocumentProfile:
        return self.documents[kind]


def load_profiles(path: Path) -> Profiles:
    """Read and check the profiles file; ConfigError names SIFT_ANALYZER_PROFILES and why."""
    try:
        raw = yaml.safe_load(path.read_text())
        return Profiles.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"SIFT_ANALYZER_PROFILES ({path}): {exc}") from exc
    except (ValidationError, SchemaError) as exc:
        raise ConfigError(f"SIFT_ANALYZER_PROFILES ({path}): {exc}") from exc

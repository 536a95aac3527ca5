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

    @model_validator(mode="after")
    def _one_kind(self) -> "EntitySpec":
        if (self.kind is None) == (self.kind_field is None):
            raise ValueError("give exactly one of kind or kind_field")
        return self


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
    _output: type[BaseModel] = PrivateAttr()

    @property
    def output_model(self) -> type[BaseModel]:
        return self._output

    def _check(self, placeholders: frozenset[str], name: str) -> None:
        used = {field for _, field, _, _ in string.Formatter().parse(self.template) if field}
        if unknown := used - placeholders:
            raise ValueError(f"template uses unknown placeholders {sorted(unknown)}")
        self._output = model_from_schema(self.json_schema, name)


class DocumentProfile(PromptProfile):
    analysis_type: str = Field(min_length=1)
    max_body_chars: int = Field(default=3000, gt=0)
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

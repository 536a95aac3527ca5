"""The labelled evaluation set (eval/README.md): documents with labels, and search queries."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from sift_common.contracts import Document, EntityRef

T = TypeVar("T", bound=BaseModel)
Sentiment = Literal["positive", "negative", "neutral", "mixed"]
Direction = Literal["up", "down", "flat"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Labels(_Strict):
    sentiment: Sentiment
    direction: Direction
    entities: list[EntityRef] = Field(min_length=1)
    also_mentioned: list[EntityRef] = Field(default_factory=list)


class EvalDocument(_Strict):
    id: str = Field(pattern=r"^(en|ko)-(news|review)-\d{3}$")
    kind: Literal["news", "review"]
    language: Literal["en", "ko"]
    source: str = Field(min_length=1)
    external_id: str = Field(min_length=1)
    title: str | None = None
    body: str = Field(min_length=1)
    published_at: AwareDatetime
    subjects: list[EntityRef] = Field(default_factory=list)
    labels: Labels

    @model_validator(mode="after")
    def _subjects_are_labelled(self) -> "EvalDocument":
        labelled = {entity.key for entity in self.labels.entities}
        if missing := [s.name for s in self.subjects if s.key not in labelled]:
            raise ValueError(f"subjects not among labels.entities: {missing}")
        return self

    def document(self) -> Document:
        """As the collector would publish it (ids derived the same way)."""
        return Document.create(
            source=self.source,
            body=self.body,
            external_id=self.external_id,
            title=self.title,
            language=self.language,
            kind=self.kind,
            published_at=self.published_at,
            subjects=self.subjects,
        )


class Query(_Strict):
    id: str = Field(min_length=1)
    language: Literal["en", "ko"]
    query: str = Field(min_length=1)
    relevant: list[str] = Field(min_length=1)


class EvalSet(_Strict):
    documents: list[EvalDocument]
    queries: list[Query]

    @model_validator(mode="after")
    def _consistent(self) -> "EvalSet":
        ids = [doc.id for doc in self.documents]
        if len(ids) != len(set(ids)):
            raise ValueError("document ids are not unique")
        known = set(ids)
        if bad := [q.id for q in self.queries if not set(q.relevant) <= known]:
            raise ValueError(f"queries naming unknown documents: {bad[:5]}")
        return self

    def by_id(self) -> dict[str, EvalDocument]:
        return {doc.id: doc for doc in self.documents}


class EvalSetError(ValueError):
    """The evaluation set cannot be read; the message names the file and line."""


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            yield number, line


def _read(folder: Path, model: type[T]) -> list[T]:
    items: list[T] = []
    for path in sorted(folder.glob("*.jsonl")):
        for number, line in _lines(path):
            try:
                items.append(model.model_validate(json.loads(line)))
            except (json.JSONDecodeError, ValidationError) as exc:
                raise EvalSetError(f"{path}:{number}: {exc}") from None
    return items


def load_eval_set(root: Path) -> EvalSet:
    if not (root / "documents").is_dir():
        raise EvalSetError(f"{root}: no documents/ folder (see eval/README.md)")
    try:
        return EvalSet(
            documents=_read(root / "documents", EvalDocument),
            queries=_read(root / "queries", Query),
        )
    except ValidationError as exc:
        raise EvalSetError(f"{root}: {exc}") from None

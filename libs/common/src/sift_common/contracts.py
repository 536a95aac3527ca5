"""The message contracts: every event on the `sift` exchange, versioned.

Publishers and consumers import these classes; the routing key of an event is its class's
`ROUTING_KEY`. A consumer accepts only the `schema_version`s it knows (a newer producer must
bump the version), and ignores unknown extra fields so additive changes need no bump.
"""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from sift_common.ids import content_hash, document_id

DocumentKind = Literal["news", "review", "generic"]
Priority = Literal["realtime", "normal", "backfill"]
Sha256Hex = str
MAX_SUBJECTS = 10


def _no_number(value: Any) -> Any:
    """The schemas say ISO 8601 strings; pydantic would also read a number as seconds (or
    milliseconds) since 1970, so `"published_at": 0` passed as 1970. A number is refused, not
    guessed at."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("expected an ISO 8601 date-time with a time zone, not a number")
    return value


# A date-time with its time zone, given as an ISO 8601 string (or a datetime in Python).
Timestamp = Annotated[AwareDatetime, BeforeValidator(_no_number)]


def _now() -> datetime:
    return datetime.now(UTC)


def _new_event_id() -> str:
    return uuid.uuid4().hex


class Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=False)


class Event(Contract):
    """Fields every event carries."""

    ROUTING_KEY: ClassVar[str]

    schema_version: Literal[1] = 1
    event_id: str = Field(default_factory=_new_event_id, min_length=1)
    occurred_at: Timestamp = Field(default_factory=_now)
    correlation_id: str = Field(
        min_length=1, description="Carried through every hop: the document id or entity key."
    )


class EntityRef(Contract):
    """An entity a document mentions: a company, a ticker, a restaurant."""

    kind: str = Field(min_length=1, max_length=50)
    name: str = Field(min_length=1, max_length=300)
    ticker: str | None = Field(default=None, max_length=20)

    @property
    def key(self) -> str:
        """Stable entity key: kind plus case- and space-folded name."""
        return f"{self.kind}:{' '.join(self.name.casefold().split())}"


class Document(Contract):
    """A collected, normalised document. `id` and `content_hash` are derived, never invented."""

    id: Sha256Hex = Field(pattern=r"^[0-9a-f]{64}$")
    content_hash: Sha256Hex = Field(pattern=r"^[0-9a-f]{64}$")
    source: str = Field(min_length=1, max_length=200)
    external_id: str | None = Field(default=None, max_length=500)
    url: str | None = Field(default=None, max_length=2000)
    title: str | None = Field(default=None, max_length=1000)
    body: str = Field(min_length=1)
    language: str | None = Field(default=None, max_length=16)
    kind: DocumentKind = "generic"
    published_at: Timestamp | None = None
    collected_at: Timestamp = Field(default_factory=_now)
    metadata: dict[str, str] = Field(default_factory=dict)
    subjects: list[EntityRef] = Field(
        default_factory=list,
        max_length=MAX_SUBJECTS,
        description="What the publisher says the document is about; wins over the model.",
    )

    @classmethod
    def create(cls, *, source: str, body: str, **fields: Any) -> "Document":
        """Build a document, deriving its id and content hash from its content."""
        return cls(
            id=document_id(source, body, fields.get("external_id"), fields.get("url")),
            content_hash=content_hash(body),
            source=source,
            body=body,
            **fields,
        )

    @model_validator(mode="after")
    def _hashes_match_content(self) -> "Document":
        if self.content_hash != content_hash(self.body):
            raise ValueError("content_hash does not match the body")
        if self.id != document_id(self.source, self.body, self.external_id, self.url):
            raise ValueError("id does not match (source, external_id or url, content)")
        return self


class IncomingDocument(Contract):
    """A document as a publisher or a source hands it over, before normalisation.

    The collector turns it into a `Document`: HTML stripped, text normalised, language
    detected when not given, URL canonicalised, size checked, id and content hash derived."""

    source: str = Field(min_length=1, max_length=200, description="Where it comes from.")
    external_id: str | None = Field(default=None, min_length=1, max_length=500)
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    title: str | None = Field(default=None, max_length=1000)
    body: str = Field(min_length=1, description="Plain text, or HTML when content_type is html.")
    content_type: Literal["text", "html"] = "text"
    kind: DocumentKind = "generic"
    language: str | None = Field(default=None, min_length=2, max_length=16)
    published_at: Timestamp | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    subjects: list[EntityRef] = Field(
        default_factory=list,
        max_length=MAX_SUBJECTS,
        description=(
            "The entities the document is about, as the publisher knows them (the reviewed "
            "business; the company and ticker of a news item). They win over what a model "
            "extracts."
        ),
    )


class EntityMention(EntityRef):
    """An entity as one analysis saw it: the reference plus that document's score for it
    (e.g. the market impact on a company), so the store can chart scores per entity."""

    score: float | None = Field(default=None, ge=0, le=100)


class Analysis(Contract):
    analysis_type: str = Field(min_length=1, description="The analysis profile, e.g. 'news'.")
    prompt_version: str = Field(min_length=1)
    model: str = Field(min_length=1)
    score: float | None = Field(default=None, ge=0, le=100)
    result: dict[str, Any] = Field(description="The schema-valid output of the profile.")
    entities: list[EntityMention] = Field(default_factory=list)
    gateway_profile: str | None = Field(
        default=None, description="The gateway model profile that answered (an A/B arm)."
    )
    repaired: bool | None = Field(
        default=None, description="Whether the answer needed its one repair turn."
    )


class DocumentCollected(Event):
    """A new document entered Sift (collector → analyzer)."""

    ROUTING_KEY: ClassVar[str] = "document.collected"

    document: Document
    priority: Priority = "normal"


class DocumentSubmitted(Event):
    """A publisher speaking AMQP hands a document to the collector's intake queue."""

    ROUTING_KEY: ClassVar[str] = "intake.document"

    document: IncomingDocument
    priority: Priority = "normal"


class DocumentAnalyzed(Event):
    """A document and its analysis (analyzer → archiver)."""

    ROUTING_KEY: ClassVar[str] = "document.analyzed"

    document: Document
    analysis: Analysis
    # The analyzer's lease fencing token for this work: the store keeps the analysis with the
    # highest token, so a worker whose lease ran out mid-call cannot overwrite its successor.
    # None from publishers that hold no lease (replays of events older than the field).
    fencing_token: int | None = Field(default=None, ge=1)


class EntityRefresh(Event):
    """An entity's digest may be stale (archiver or schedule → analyzer)."""

    ROUTING_KEY: ClassVar[str] = "entity.refresh"

    entity: EntityRef
    reason: Literal["new_documents", "schedule", "manual"] = "new_documents"
    new_document_ids: list[Sha256Hex] = Field(default_factory=list)


class EntityDigested(Event):
    """A fresh LLM digest of an entity's recent documents (analyzer → archiver)."""

    ROUTING_KEY: ClassVar[str] = "entity.digested"

    entity: EntityRef
    digest_type: str = Field(min_length=1)
    prompt_version: str = Field(min_length=1)
    model: str = Field(min_length=1)
    summary: str = Field(min_length=1)
    score: float | None = Field(default=None, ge=0, le=100)
    details: dict[str, Any] = Field(default_factory=dict)
    document_ids: list[Sha256Hex] = Field(min_length=1)


EVENT_TYPES: tuple[type[Event], ...] = (
    DocumentSubmitted,
    DocumentCollected,
    DocumentAnalyzed,
    EntityRefresh,
    EntityDigested,
)

"""The ingest API's request and response bodies, and its error (all in the OpenAPI document)."""

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag

from sift_collector.ingest import Status
from sift_common.contracts import IncomingDocument, Priority


class FieldError(BaseModel):
    field: str = Field(description="Where in the request body: `documents[2].body`, `source`.")
    reason: str


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `document_rejected`.")
    message: str
    errors: list[FieldError] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: ErrorDetail


class DocumentBatch(BaseModel):
    documents: list[IncomingDocument] = Field(
        min_length=1, description="At most SIFT_COLLECTOR_MAX_BATCH documents (default 500)."
    )
    priority: Priority = "normal"


def _shape(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "documents" in value else "document"


Submission = Annotated[
    Annotated[IncomingDocument, Tag("document")] | Annotated[DocumentBatch, Tag("batch")],
    Discriminator(_shape),
]


class AcceptedDocument(BaseModel):
    id: str = Field(description="The document id (stable: derived from its content).")
    status: Status = Field(description="`duplicate`: already seen in the dedup window.")


class Accepted(BaseModel):
    accepted: list[AcceptedDocument] = Field(description="One entry per document, in order.")


class HealthReport(BaseModel):
    status: Literal["live", "ready", "not_ready"]
    checks: dict[str, str]


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        errors: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.headers = status, dict(headers or {})
        self.body = ErrorResponse(
            error=ErrorDetail(
                code=code,
                message=message,
                errors=[FieldError(field=field, reason=reason) for field, reason in errors],
            )
        )

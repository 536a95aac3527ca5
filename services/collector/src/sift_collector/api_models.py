"""The ingest API's request and response bodies (in the OpenAPI document with the shared error
envelope, `sift_common.service.errors.ErrorResponse`)."""

from typing import Annotated, Any

from pydantic import BaseModel, Discriminator, Field, Tag

from sift_collector.ingest import Status
from sift_common.contracts import IncomingDocument, Priority


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

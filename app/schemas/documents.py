"""The bodies of ``app/routes/documents.py``: documents in and out, writes and their outcomes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app.schemas.common import (
    NOT_BLANK_SCHEMA,
    MetadataIn,
    MetadataOut,
    ShortText,
    not_blank,
)


class DocumentSummary(BaseModel):
    doc_id: str
    title: str
    chars: int = Field(description="Length of the document text in characters.")
    passages: int = Field(description="How many passages the document was split into.")
    metadata: MetadataOut


class DocumentList(BaseModel):
    total: int = Field(
        description="Number of documents in the index (matching the filter, if one is given)."
    )
    documents: list[DocumentSummary]


class PassageSpan(BaseModel):
    chunk_id: int
    start: int
    end: int


class DocumentDetail(BaseModel):
    doc_id: str
    title: str
    text: str
    chars: int
    metadata: MetadataOut
    passages: list[PassageSpan]


MAX_DOCUMENT_CHARS = 200_000
MAX_BULK_DOCUMENTS = 100
DOC_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,512}$"
DocId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=512, pattern=DOC_ID_PATTERN),
    Field(description="1-512 characters, no control characters; may contain /."),
]


class DocumentIn(BaseModel):
    """A document to add or replace."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "title": "Venezuela talks resume",
                    "text": "Government and opposition delegates met in Oslo on Tuesday.",
                    "metadata": {"section": "world", "published": "2019-05-28", "year": 2019},
                }
            ]
        },
    )

    title: Annotated[
        ShortText,
        Field(description="Up to 1000 characters; shown with results and embedded with passages."),
    ]
    # Kept as sent, not trimmed: passage offsets index into it.
    text: Annotated[
        str,
        StringConstraints(max_length=MAX_DOCUMENT_CHARS),
        AfterValidator(not_blank),
        Field(
            description=f"The full text, up to {MAX_DOCUMENT_CHARS} characters.",
            json_schema_extra=NOT_BLANK_SCHEMA,
        ),
    ]
    metadata: MetadataIn = Field(default_factory=dict)


class BulkDocument(DocumentIn):
    doc_id: DocId


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    documents: list[BulkDocument] = Field(
        min_length=1,
        max_length=MAX_BULK_DOCUMENTS,
        description=f"1 to {MAX_BULK_DOCUMENTS} documents, embedded in shared batches. A later "
        "one with the same id replaces an earlier one.",
    )


Refresh = Literal["false", "wait_for"]
RefreshParam = Annotated[
    Refresh,
    Field(
        description="`false`: return once the write is durable; it becomes searchable within "
        "SEARCH_REFRESH_INTERVAL (1 s by default). `wait_for`: return once it is searchable."
    ),
]
WriteOutcome = Literal["created", "replaced"]


class WriteResponse(BaseModel):
    doc_id: str
    result: WriteOutcome
    passages: int = Field(description="How many passages the document was split into.")
    seq: int = Field(description="The index's sequence number after this write.")


class DeleteByFilterResponse(BaseModel):
    deleted: int = Field(description="How many documents were deleted.")
    seq: int = Field(description="The index's sequence number after these deletes.")
    took_ms: float


class BulkItem(BaseModel):
    doc_id: str
    status: Literal[200, 201] = Field(description="201 created, 200 replaced.")
    result: WriteOutcome
    passages: int


class BulkResponse(BaseModel):
    seq: int = Field(description="The index's sequence number after these writes.")
    took_ms: float
    items: list[BulkItem] = Field(description="One per document, in request order.")

"""A typed client for the Semantic Search service.

```python
from semantic_search_client import SearchClient

with SearchClient("http://127.0.0.1:8000") as client:
    for passage in client.search("Russian military presence", k=3).results:
        print(passage.doc_id, passage.start, passage.end, passage.text)
```

``semantic_search_client.langchain`` and ``semantic_search_client.llama_index`` hold retrievers
for those frameworks (the ``langchain`` and ``llama-index`` extras).
"""

from __future__ import annotations

from semantic_search_client.client import AsyncSearchClient, SearchClient
from semantic_search_client.errors import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RetryableError,
    SearchError,
    ServerError,
    TransportError,
    UnavailableError,
)
from semantic_search_client.models import (
    BatchSearchResponse,
    BulkDocument,
    BulkItem,
    BulkResponse,
    DeleteByFilterResponse,
    DocumentDetail,
    DocumentList,
    DocumentSummary,
    Health,
    Info,
    PassageSpan,
    Ranks,
    Readiness,
    Scores,
    SearchRequest,
    SearchResponse,
    SearchResult,
    WriteResponse,
)
from semantic_search_client.retrying import RetryPolicy
from semantic_search_client.version import __version__

__all__ = [
    "AsyncSearchClient",
    "AuthenticationError",
    "BatchSearchResponse",
    "BulkDocument",
    "BulkItem",
    "BulkResponse",
    "ConflictError",
    "DeleteByFilterResponse",
    "DocumentDetail",
    "DocumentList",
    "DocumentSummary",
    "Health",
    "Info",
    "InvalidRequestError",
    "NotFoundError",
    "PassageSpan",
    "PermissionDeniedError",
    "Ranks",
    "RateLimitedError",
    "Readiness",
    "RetryPolicy",
    "RetryableError",
    "Scores",
    "SearchClient",
    "SearchError",
    "SearchRequest",
    "SearchResponse",
    "SearchResult",
    "ServerError",
    "TransportError",
    "UnavailableError",
    "WriteResponse",
    "__version__",
]

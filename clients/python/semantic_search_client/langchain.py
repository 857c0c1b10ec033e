"""A LangChain retriever over the service (the ``langchain`` extra: langchain-core).

```python
from semantic_search_client.langchain import SemanticSearchRetriever

retriever = SemanticSearchRetriever(base_url="http://127.0.0.1:8000", k=3)
documents = retriever.invoke("Russian military presence")
```

Each ``Document`` is a passage: ``page_content`` its text, ``id`` ``<doc_id>#<chunk_id>``, and
``metadata`` its ``doc_id``, ``title``, ``start``, ``end``, ``chunk_id``, ``rank``, ``score``,
``scores`` and its document's ``metadata``.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, PrivateAttr, SecretStr

from semantic_search_client.client import DEFAULT_TIMEOUT, AsyncSearchClient, SearchClient
from semantic_search_client.models import Mode, SearchResponse
from semantic_search_client.retrieval import passage_id, passage_metadata


class SemanticSearchRetriever(BaseRetriever):
    """Passages of the service for a query, as LangChain ``Document``s.

    ``base_url`` and ``api_key`` default as for ``SearchClient`` (``$SEARCH_URL``,
    ``$SEARCH_API_KEY``); ``k``, ``mode`` and ``filter`` shape every search. Pass ``client``
    and/or ``async_client`` to use clients of your own. Without an ``async_client``, each
    async retrieval opens a client for its own call: an httpx AsyncClient belongs to one
    event loop, and a retriever may be awaited from several.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    base_url: str | None = None
    api_key: SecretStr | None = None
    k: int = 4
    mode: Mode | None = None
    filter: dict[str, Any] | None = None
    timeout: float = DEFAULT_TIMEOUT
    retries: int = 0
    client: SearchClient | None = None
    async_client: AsyncSearchClient | None = None

    _client: SearchClient = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._client = self.client or SearchClient(**self._client_arguments())

    def _client_arguments(self) -> dict[str, Any]:
        key = self.api_key.get_secret_value() if self.api_key is not None else None
        return {
            "base_url": self.base_url,
            "api_key": key,
            "timeout": self.timeout,
            "retries": self.retries,
        }

    def _documents(self, response: SearchResponse) -> list[Document]:
        return [
            Document(id=passage_id(r), page_content=r.text, metadata=passage_metadata(r))
            for r in response.results
        ]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        response = self._client.search(query, k=self.k, mode=self.mode, filter=self.filter)
        return self._documents(response)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        if self.async_client is not None:
            response = await self.async_client.search(
                query, k=self.k, mode=self.mode, filter=self.filter
            )
        else:
            async with AsyncSearchClient(**self._client_arguments()) as client:
                response = await client.search(query, k=self.k, mode=self.mode, filter=self.filter)
        return self._documents(response)

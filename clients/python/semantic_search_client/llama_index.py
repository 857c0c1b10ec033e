"""A LlamaIndex retriever over the service (the ``llama-index`` extra: llama-index-core).

```python
from semantic_search_client.llama_index import SemanticSearchRetriever

retriever = SemanticSearchRetriever(base_url="http://127.0.0.1:8000", k=3)
nodes = retriever.retrieve("Russian military presence")
```

Each ``NodeWithScore`` holds a ``TextNode`` per passage: its text, the id
``<doc_id>#<chunk_id>``, ``start_char_idx``/``end_char_idx`` (its offsets in the document), a
SOURCE relationship to the document, and the same metadata as the LangChain retriever's
(offsets and scores left out of what an LLM or an embedding sees).
"""

from __future__ import annotations

from typing import Any

from llama_index.core.callbacks import CallbackManager
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import (
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)

from semantic_search_client.client import DEFAULT_TIMEOUT, AsyncSearchClient, SearchClient
from semantic_search_client.models import Mode, SearchResponse, SearchResult
from semantic_search_client.retrieval import POSITIONAL_KEYS, passage_id, passage_metadata


class SemanticSearchRetriever(BaseRetriever):
    """Passages of the service for a query, as LlamaIndex nodes with their scores.

    The arguments are those of the LangChain retriever (``base_url``, ``api_key``, ``k``,
    ``mode``, ``filter``, ``timeout``, ``retries``, ``client``, ``async_client``), plus
    LlamaIndex's ``callback_manager`` and ``verbose``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        k: int = 4,
        mode: Mode | None = None,
        filter: dict[str, Any] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 0,
        client: SearchClient | None = None,
        async_client: AsyncSearchClient | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        super().__init__(callback_manager=callback_manager, verbose=verbose)
        self.k = k
        self.mode = mode
        self.filter = filter
        self._arguments: dict[str, Any] = {
            "base_url": base_url,
            "api_key": api_key,
            "timeout": timeout,
            "retries": retries,
        }
        self._client = client or SearchClient(**self._arguments)
        self._async_client = async_client

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        response = self._client.search(
            query_bundle.query_str, k=self.k, mode=self.mode, filter=self.filter
        )
        return self._nodes(response)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # Without a client of the caller's, one per call: an httpx AsyncClient belongs to one
        # event loop, and a retriever may be awaited from several.
        query = query_bundle.query_str
        if self._async_client is not None:
            response = await self._async_client.search(
                query, k=self.k, mode=self.mode, filter=self.filter
            )
        else:
            async with AsyncSearchClient(**self._arguments) as client:
                response = await client.search(query, k=self.k, mode=self.mode, filter=self.filter)
        return self._nodes(response)

    def _nodes(self, response: SearchResponse) -> list[NodeWithScore]:
        return [NodeWithScore(node=node(result), score=result.score) for result in response.results]


def node(result: SearchResult) -> TextNode:
    hidden = list(POSITIONAL_KEYS)
    return TextNode(
        id_=passage_id(result),
        text=result.text,
        metadata=passage_metadata(result),
        start_char_idx=result.start,
        end_char_idx=result.end,
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=result.doc_id)},
        excluded_llm_metadata_keys=hidden,
        excluded_embed_metadata_keys=hidden,
    )

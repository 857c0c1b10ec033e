"""Which version of a store is served. A store's first version is in its own collections; a
reindex makes another in ``<name>__r<n>_*``, and the row ``current`` of the store's meta names
the one served. Here: finding and opening the served version and its manifest
(``read_manifest``), and dropping a version.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

from indexer.ingest import passage_representation
from indexer.keyword import Analyzer
from indexer.manifest import FORMAT_VERSION, Manifest
from indexer.stores.base import StoreMissingError, StoreOpenError, StoreUnavailableError
from indexer.stores.milvus.client import (
    Consistency,
    MilvusTarget,
    call,
    collection_names,
    drop_quietly,
    parse_index_params,
)
from indexer.stores.milvus.schema import load_collections
from indexer.stores.milvus.terms import OUR_TERMS, KeywordField, keyword_field

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from indexer.types import Passage

logger = logging.getLogger("indexer")

# A reindexed version of store ``search`` lives in ``search__r<n>_*``; the row ``current`` of
# ``search_meta`` names the version served (none: ``search_*`` itself).
VERSION_MARK = "__r"


def version_number(collection: str) -> int:
    """0 for a store's first version, n for ``<name>__r<n>``."""
    found = re.search(rf"{VERSION_MARK}(\d+)$", collection)
    return int(found[1]) if found else 0


@dataclass(frozen=True)
class Version:
    """One version of a store: where its rows are and how they were prepared. A reindex makes
    another; a view keeps the version it was published from."""

    data: MilvusTarget
    """Whose collection names hold it: the store's own, or ``<name>__r<n>``."""
    manifest: Manifest
    full_text: bool
    keyword: KeywordField = OUR_TERMS
    """Where BM25 reads from, with ``full_text``: a store made now has our analyser's terms."""

    @property
    def passages(self) -> str:
        return collection_names(self.data)[0]

    @property
    def documents(self) -> str:
        return collection_names(self.data)[1]

    @property
    def meta(self) -> str:
        return collection_names(self.data)[2]

    @property
    def store_meta(self) -> str:
        """The store's first meta collection, whichever version this is: the replicas' rows
        (``numbering``) are the store's, not a version's."""
        store = re.sub(rf"{VERSION_MARK}\d+$", "", self.data.collection)
        return collection_names(replace(self.data, collection=store))[2]

    @cached_property
    def search_params(self) -> dict[str, Any]:
        """Applied to every vector search (``ef``, ``nprobe``), as the manifest records them."""
        store = self.manifest.store
        return parse_index_params(store.spec, store.search_params)[1]

    @cached_property
    def analyzer(self) -> Analyzer:
        """Our keyword analysis with the manifest's stemmer (``terms``)."""
        return Analyzer(self.manifest.keyword.stemmer)

    def keyword_input(self, passage: Passage, title: str) -> str:
        """What a passage's BM25 input field holds here: its title-prefixed text, as
        ``keyword`` stores it."""
        text = passage_representation(passage, title, self.manifest.title_prefix)
        return self.keyword.text(self.analyzer, text)


def read_manifest(client: MilvusClient, target: MilvusTarget) -> Manifest:
    """The manifest of the store at ``target`` (its current version); StoreMissingError
    if there is none."""
    _load_meta(client, target)
    current = served_collection(client, target, "Strong")
    return _version_manifest(client, replace(target, collection=current))


def served_collection(
    client: MilvusClient, target: MilvusTarget, consistency: Consistency | None
) -> str:
    """The collection name of the version ``target``'s meta says is served (its own, until a
    reindex)."""
    rows = call(
        lambda: client.query(
            collection_names(target)[2],
            filter='key == "current"',
            output_fields=["value"],
            consistency_level=consistency or target.consistency,
        )
    )
    return str(rows[0]["value"]) if rows else target.collection


def open_version(client: MilvusClient, target: MilvusTarget) -> Version:
    """The served version of the store at ``target``, loaded for searching."""
    _load_meta(client, target)
    return version_at(
        client, target, replace(target, collection=served_collection(client, target, "Strong"))
    )


def version_at(client: MilvusClient, target: MilvusTarget, data: MilvusTarget) -> Version:
    """The version of ``target`` in ``data``'s collections, loaded for searching."""
    names = collection_names(data)
    missing = [n for n in names if not call(partial(client.has_collection, n))]
    if missing:
        raise StoreMissingError(f"{target} holds no index (no {', '.join(missing)})")
    load_collections(client, names)  # searches need them loaded
    manifest = _version_manifest(client, data)
    fields = {f["name"] for f in call(partial(client.describe_collection, names[0]))["fields"]}
    keyword = keyword_field(fields)
    if "sparse" not in fields or keyword is None:
        return Version(data, manifest, full_text=False)
    if not keyword.ours:
        logger.warning(
            "%s ranks keyword searches by Milvus's own analysis of the passage text (it was "
            "built before the store indexed this service's terms), below the FAISS store's: "
            "python -m indexer reindex --store milvus (or POST /admin/reindex) rebuilds it, "
            "keeping every document",
            data,
        )
    return Version(data, manifest, full_text=True, keyword=keyword)


def _load_meta(client: MilvusClient, target: MilvusTarget) -> None:
    meta = collection_names(target)[2]
    if not call(lambda: client.has_collection(meta)):
        raise StoreMissingError(f"{target} holds no index (no collection {meta})")
    try:
        load_collections(client, [meta])  # as the others: pymilvus's own wait polls every 0.5 s
    except StoreUnavailableError:
        # A build creates the collection, then its index: a reader between the two (a replica
        # waiting for another's build) finds it unloadable, as a store not yet complete.
        if not call(lambda: client.list_indexes(meta)):
            raise StoreMissingError(f"{target} is being created (no index on {meta} yet)") from None
        raise


def _version_manifest(client: MilvusClient, data: MilvusTarget) -> Manifest:
    _load_meta(client, data)
    meta = collection_names(data)[2]
    rows = call(
        lambda: client.query(
            meta, filter='key == "manifest"', output_fields=["value"], consistency_level="Strong"
        )
    )
    if not rows:
        raise StoreMissingError(f"{data} holds no complete index (no manifest yet)")
    try:
        manifest = Manifest.model_validate_json(rows[0]["value"])
    except ValueError as error:
        raise StoreOpenError(f"the manifest in {meta} is not valid: {error}") from error
    if manifest.format_version != FORMAT_VERSION:
        raise StoreOpenError(
            f"{data} has format version {manifest.format_version}, this version reads "
            f"{FORMAT_VERSION}"
        )
    return manifest


def drop_version(client: MilvusClient, data: MilvusTarget, *, keep_meta: bool) -> None:
    """Drop the collections of the version in ``data``; with ``keep_meta`` (a store's first
    version, whose meta also names the version served) only its manifest and counter rows."""
    passages, documents, meta = collection_names(data)
    for name in (passages, documents):
        drop_quietly(client, name)
    if not keep_meta:
        drop_quietly(client, meta)
        return
    try:
        call(partial(client.delete, meta, ids=["manifest", "seq"]))
    except StoreUnavailableError as error:
        logger.warning("could not clear %s: %s", meta, error)


__all__ = ["read_manifest", "version_number"]

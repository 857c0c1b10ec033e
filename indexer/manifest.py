"""``manifest.json``: what an index version holds and how it was built.

Every field is read back: the service refuses an index it cannot serve (unknown format,
another model) and prepares written documents with the recorded chunking, keyword and
title-prefix settings; the store opens the recorded vector index and checks the counts;
``build --if-stale`` compares the checksums and settings with the corpus on disk.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from indexer.chunking import ChunkingParams
from indexer.keyword import KeywordParams

MANIFEST_FILE = "manifest.json"
# 2: a BM25 keyword index (bm25/) and title-prefixed passage representations.
# 3: a live index: versions under CURRENT, a translog, metadata, query-time BM25 (keyword/).
FORMAT_VERSION = 3


class ModelInfo(BaseModel):
    name: str
    dimension: int


class StoreInfo(BaseModel):
    kind: str
    spec: str = Field("", description="The engine's index description (FAISS factory string).")
    search_params: str = Field("", description="Search-time parameters applied when loaded.")


class CorpusInfo(BaseModel):
    source: str = Field(description="What the index was first built from.")
    checksums: dict[str, str] = Field(
        description="sha256 of each document's title, text and metadata, in this version"
    )


class Counts(BaseModel):
    documents: int
    passages: int


class Manifest(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    format_version: int = FORMAT_VERSION
    model: ModelInfo
    chunking: ChunkingParams
    keyword: KeywordParams
    title_prefix: bool = Field(
        description="Passages were embedded and keyword-indexed with their document title first."
    )
    store: StoreInfo
    corpus: CorpusInfo
    seq: int = Field(0, description="The last write (translog sequence number) in this version.")
    counts: Counts
    built_at: datetime = Field(description="When this version was written (build or merge).")
    build_seconds: float
    build_id: str = Field(
        "",
        description="Names one build or reindex of the index; merges keep it, a reindex makes a "
        "new one (so a client can tell which index answered).",
    )
    files: dict[str, str] = Field(
        default_factory=dict,
        description="sha256 of each data file of this version (path relative to it); checked "
        "before a reindexed version is switched to. Empty in versions written before it existed.",
    )


class ManifestError(ValueError):
    pass


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError as error:
        raise ManifestError(f"{path} does not exist") from error
    except OSError as error:
        raise ManifestError(f"{path} is unreadable: {error.strerror or error}") from error
    # Check the version first: an older format fails validation, and "rebuild" is the news.
    version = _declared_version(raw)
    if version is not None and version != FORMAT_VERSION:
        raise ManifestError(
            f"{path} has format version {version}, this version reads {FORMAT_VERSION}"
        )
    try:
        return Manifest.model_validate_json(raw)
    except ValidationError as error:
        count = error.error_count()
        raise ManifestError(f"{path} is not a valid manifest ({count} errors)") from error


def _declared_version(raw: bytes) -> object:
    try:
        return json.loads(raw).get("format_version")
    except (ValueError, AttributeError):
        return None


def write_manifest(directory: Path, manifest: Manifest) -> None:
    with (directory / MANIFEST_FILE).open("w", encoding="utf-8") as handle:
        handle.write(manifest.model_dump_json(indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())

"""``manifest.json``: what an index directory holds and how it was built.

The service reads it first to refuse an index it cannot serve (unknown format, another
model), and ``build --if-stale`` compares it with the corpus and settings to skip rebuilds.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


class ModelInfo(BaseModel):
    name: str
    dimension: int


class ChunkingInfo(BaseModel):
    max_tokens: int
    overlap: float
    segmenter: str = "nupunkt"


class StoreInfo(BaseModel):
    kind: str
    metric: str = "inner_product"


class CorpusInfo(BaseModel):
    source: str
    checksums: dict[str, str] = Field(description="sha256 of each document's title and text")
    skipped: list[str] = Field(default_factory=list)


class Counts(BaseModel):
    documents: int
    passages: int


class Manifest(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    format_version: int = FORMAT_VERSION
    model: ModelInfo
    chunking: ChunkingInfo
    store: StoreInfo
    corpus: CorpusInfo
    counts: Counts
    built_at: datetime
    build_seconds: float


class ManifestError(ValueError):
    pass


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST_FILE
    try:
        manifest = Manifest.model_validate_json(path.read_bytes())
    except FileNotFoundError as error:
        raise ManifestError(f"{path} does not exist") from error
    except OSError as error:
        raise ManifestError(f"{path} is unreadable: {error.strerror or error}") from error
    except ValidationError as error:
        raise ManifestError(
            f"{path} is not a valid manifest ({error.error_count()} errors)"
        ) from error
    if manifest.format_version != FORMAT_VERSION:
        raise ManifestError(
            f"{path} has format version {manifest.format_version}, "
            f"this version reads {FORMAT_VERSION}"
        )
    return manifest


def write_manifest(directory: Path, manifest: Manifest) -> None:
    (directory / MANIFEST_FILE).write_text(
        manifest.model_dump_json(indent=2) + "\n", encoding="utf-8"
    )

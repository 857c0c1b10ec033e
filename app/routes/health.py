"""Probes and facts: ``/health`` (alive), ``/ready`` (can answer searches), ``/info``."""

from __future__ import annotations

from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse

from app.deps import ReaderDep, ServiceDep
from app.keys import Caller
from app.schemas.health import Health, Info, Readiness
from app.security import ReadCaller, ReadKey
from indexer.search import DEFAULT_MODE
from indexer.stores import Reader

router = APIRouter(tags=["service"])


def scoped_counts(reader: Reader, caller: Caller) -> tuple[int, int]:
    """Documents and passages the caller can see (a scoped key: a pass over its documents)."""
    if caller.scope is None:
        return reader.document_count, reader.passage_count
    documents = reader.count_documents(caller.scope)
    passages = 0
    for offset in range(0, documents, _PAGE):
        passages += sum(len(s.passages) for s in reader.documents(offset, _PAGE, caller.scope))
    return documents, passages


_PAGE = 1000


def service_version() -> str:
    try:
        return version("semantic-search")
    except PackageNotFoundError:
        return "unknown"


@router.get("/health", response_model=Health)
def health() -> Health:
    """200 while the process is up, whether or not the model has loaded."""
    return Health(status="ok")


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Still loading, or loading failed."}},
)
def ready(service: ServiceDep) -> Readiness | JSONResponse:
    """200 once the model and index are loaded; 503 before that, or if loading failed."""
    if service.ready:
        return Readiness(status="ready")
    body = Readiness(status="unavailable", detail=service.load_error or "loading the model")
    return JSONResponse(body.model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)


@router.get(
    "/info",
    response_model=Info,
    dependencies=[ReadKey],
    responses={
        401: {"description": "A read key is configured (SEARCH_READ_API_KEY) and none was sent."},
        403: {"description": "The key sent is not valid."},
    },
)
def info(reader: ReaderDep, service: ServiceDep, caller: ReadCaller) -> Info:
    """What is being served: model, index size, how it was built, whether it takes writes.
    For a key with a scope, the documents and passages are those within it."""
    assert service.store is not None  # the reader came from it
    manifest = reader.manifest  # the view's: consistent with its counts and seq
    documents, passages = scoped_counts(reader, caller)
    return Info(
        version=service_version(),
        model=manifest.model.name,
        backend=service.backend,
        dimension=manifest.model.dimension,
        documents=documents,
        passages=passages,
        seq=reader.seq,
        writes=service.writes_problem or "enabled",
        built_at=manifest.built_at,
        build_id=manifest.build_id,
        index_format_version=manifest.format_version,
        chunking=asdict(manifest.chunking),
        keyword=asdict(manifest.keyword),
        title_prefix=manifest.title_prefix,
        store=manifest.store.kind,
        default_mode=DEFAULT_MODE,
        fusion=asdict(service.settings.fusion_params),
    )

"""Probes and facts: ``/health`` (alive), ``/ready`` (can answer searches), ``/info``."""

from __future__ import annotations

from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse

from app.deps import ReaderDep, ServiceDep
from app.schemas.health import Health, Info, Readiness
from app.security import ReadKey
from indexer.search import DEFAULT_MODE

router = APIRouter(tags=["service"])


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
def info(reader: ReaderDep, service: ServiceDep) -> Info:
    """What is being served: model, index size, how it was built, whether it takes writes."""
    assert service.store is not None  # the reader came from it
    manifest = reader.manifest  # the view's: consistent with its counts and seq
    return Info(
        version=service_version(),
        model=manifest.model.name,
        backend=service.backend,
        dimension=manifest.model.dimension,
        documents=reader.document_count,
        passages=reader.passage_count,
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

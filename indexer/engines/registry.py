"""The engine registry: which engines exist and how one is made from settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from indexer.embedding import DEFAULT_BATCH_SIZE, Embedder
from indexer.engines.base import Engine
from indexer.engines.local import LocalEngine

if TYPE_CHECKING:
    from indexer.settings import IndexSettings

ENGINES = ("local", "ray")


def make_engine(
    settings: IndexSettings, embedder: Embedder, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> Engine:
    """The engine ``settings.engine`` names; ``embedder`` is the model the build loaded (the
    local engine runs it; Ray's actors load their own from the same settings)."""
    if settings.engine == "local":
        return LocalEngine(embedder, batch_size=batch_size)
    # Imported here: Ray is an optional extra, and this module is not Ray's.
    from indexer.engines.ray import ModelSpec, RayEngine

    spec = ModelSpec(
        name=settings.model,
        backend=settings.backend,
        # Absolute: actors do not run in the driver's working directory.
        onnx_dir=Path(settings.onnx_dir).resolve(),
        threads=settings.ray_actor_threads,
        device="cuda" if settings.num_gpus else "cpu",
    )
    return RayEngine(
        spec,
        address=settings.ray_address or None,
        actors=settings.ray_actors,
        num_gpus=settings.num_gpus,
        batch_size=batch_size,
    )

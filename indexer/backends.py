"""Choosing how the embedding model runs: torch (sentence-transformers) or ONNX Runtime."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal, get_args

from indexer.embedding import (
    TORCH_EXTRA_INSTALL,
    Embedder,
    ModelLoadError,
    SentenceTransformerEmbedder,
)

Backend = Literal["torch", "onnx", "onnx-int8"]
BACKENDS: tuple[Backend, ...] = get_args(Backend)
# ONNX Runtime gives torch's vectors (same relevance) in a fraction of the start-up time and
# memory; it needs a one-off export, which the indexer makes when it is missing.
DEFAULT_BACKEND: Backend = "onnx"
DEFAULT_ONNX_DIR = Path("data/onnx")


def torch_backend_installed() -> bool:
    """Serving with ONNX Runtime does without torch (the container image has none)."""
    return importlib.util.find_spec("sentence_transformers") is not None


def onnx_variant(backend: Backend) -> str | None:
    """The ONNX export file a backend runs, or None for torch."""
    return {"onnx": "fp32", "onnx-int8": "int8"}.get(backend)


def backend_problem(backend: Backend, model_name: str, onnx_dir: Path) -> str | None:
    """Why ``backend`` cannot run ``model_name`` here, saying what to do, or None. Cheap:
    nothing is imported or loaded. The one check behind the service's start-up and the
    backends a reindex may switch to."""
    variant = onnx_variant(backend)
    if variant is None:
        if torch_backend_installed():
            return None
        return (
            "torch and sentence-transformers are not installed here. Install them with: "
            f"{TORCH_EXTRA_INSTALL}"
        )
    from indexer.onnx_embedding import export_problem

    problem = export_problem(model_name, onnx_dir, variant)
    if problem is None:
        return None
    return (
        f"{problem}. Make it with: python -m indexer export-onnx --out {onnx_dir} "
        f"--model {model_name}"
    )


def cached_models() -> list[str]:
    """Model repositories in the local Hugging Face cache (never the network)."""
    try:
        from huggingface_hub import scan_cache_dir

        return sorted(r.repo_id for r in scan_cache_dir().repos if r.repo_type == "model")
    except Exception:  # no cache, or no huggingface_hub: nothing is installed
        return []


def load_embedder(
    model_name: str,
    backend: Backend = DEFAULT_BACKEND,
    onnx_dir: Path = DEFAULT_ONNX_DIR,
    *,
    threads: int | None = None,
    device: str = "cpu",
) -> Embedder:
    """The model, run by ``backend``; the ONNX ones need ``python -m indexer export-onnx`` first.
    ``threads``: how many cores it may use (None: all); ``device``: torch's ("cuda" on a GPU)."""
    variant = onnx_variant(backend)
    if variant is None:
        return SentenceTransformerEmbedder(model_name, device=device, threads=threads)
    if device != "cpu":
        raise ModelLoadError(f"the {backend} backend runs on the CPU; use torch on {device}")
    from indexer.onnx_embedding import OnnxEmbedder

    return OnnxEmbedder(model_name, onnx_dir, variant=variant, threads=threads)

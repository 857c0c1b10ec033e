"""Choosing how the embedding model runs: torch (sentence-transformers) or ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from indexer.embedding import Embedder, SentenceTransformerEmbedder

Backend = Literal["torch", "onnx", "onnx-int8"]
BACKENDS: tuple[Backend, ...] = get_args(Backend)
DEFAULT_ONNX_DIR = Path("data/onnx")


def load_embedder(
    model_name: str, backend: Backend = "torch", onnx_dir: Path = DEFAULT_ONNX_DIR
) -> Embedder:
    """The model, run by ``backend``; the ONNX ones need ``python -m indexer export-onnx`` first."""
    if backend == "torch":
        return SentenceTransformerEmbedder(model_name)
    from indexer.onnx_embedding import OnnxEmbedder

    return OnnxEmbedder(model_name, onnx_dir, variant="int8" if backend == "onnx-int8" else "fp32")

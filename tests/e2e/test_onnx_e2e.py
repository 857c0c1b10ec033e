"""The ONNX Runtime backend: exported from the bundled model, same vectors, served for real."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from indexer.backends import load_embedder
from indexer.embedding import DEFAULT_MODEL, ModelLoadError, SentenceTransformerEmbedder
from indexer.index import SearchIndex
from indexer.onnx_embedding import export_onnx
from tests.conftest import RUSSIA_DOC
from tests.processes import running_service


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(DEFAULT_MODEL, tmp_path_factory.mktemp("onnx"))


def test_onnx_vectors_match_sentence_transformers(
    onnx_dir: Path, real_embedder: SentenceTransformerEmbedder, real_index_dir: Path
) -> None:
    texts = [p.text for p in SearchIndex.open(real_index_dir).passages] + [
        "Russian military presence"
    ]
    torch_vectors = real_embedder.encode(texts)
    onnx = load_embedder(DEFAULT_MODEL, "onnx", onnx_dir)
    assert (onnx.model_name, onnx.dimension) == (DEFAULT_MODEL, 384)
    np.testing.assert_allclose(onnx.encode(texts, batch_size=8), torch_vectors, atol=1e-4)
    int8 = load_embedder(DEFAULT_MODEL, "onnx-int8", onnx_dir).encode(texts)
    cosines = (int8 * torch_vectors).sum(axis=1)
    assert cosines.min() > 0.9  # quantised: close, not equal
    assert onnx.tokenizer().token_spans("Russian troops") == real_embedder.tokenizer().token_spans(
        "Russian troops"
    )


def test_a_missing_export_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="python -m indexer export-onnx --out"):
        load_embedder(DEFAULT_MODEL, "onnx", tmp_path)


def test_the_service_serves_with_the_onnx_backend(
    onnx_dir: Path, real_index_dir: Path, tmp_path: Path
) -> None:
    env = {"SEARCH_BACKEND": "onnx", "SEARCH_ONNX_DIR": str(onnx_dir)}
    with running_service(real_index_dir, tmp_path / "service.log", **env) as base:
        body = httpx.get(f"{base}/search", params={"q": "Russian military presence", "k": 3}).json()
    assert body["results"][0]["doc_id"] == RUSSIA_DOC
    assert body["results"][0]["start"] == 2866

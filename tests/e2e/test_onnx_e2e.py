"""The ONNX Runtime backend: exported from the bundled model, same vectors, served for real."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from indexer.backends import load_embedder
from indexer.embedding import DEFAULT_MODEL, ModelLoadError, SentenceTransformerEmbedder
from tests.utils.processes import running_service, startup_refusal
from tests.utils.seeds import RUSSIA_DOC, all_passages


def test_onnx_vectors_match_sentence_transformers(
    onnx_dir: Path, real_embedder: SentenceTransformerEmbedder, real_index_dir: Path
) -> None:
    texts = [p.text for p in all_passages(real_index_dir)] + ["Russian military presence"]
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


@pytest.mark.parametrize("backend", [pytest.param("torch", marks=pytest.mark.long), "onnx-int8"])
def test_the_service_also_serves_with_the_other_backends(
    backend: str, onnx_dir: Path, real_index_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "service.log"
    with running_service(real_index_dir, onnx_dir, log, SEARCH_BACKEND=backend) as base:
        body = httpx.get(f"{base}/search", params={"q": "Russian military presence", "k": 3}).json()
        info = httpx.get(f"{base}/info").json()
    assert body["results"][0]["doc_id"] == RUSSIA_DOC
    assert body["results"][0]["start"] == 2866
    assert info["backend"] == backend


def test_python_m_app_refuses_to_start_without_the_onnx_export(
    real_index_dir: Path, tmp_path: Path
) -> None:
    refusal = startup_refusal(
        SEARCH_INDEX_DIR=str(real_index_dir),
        SEARCH_ONNX_DIR=str(tmp_path / "no-export"),
        SEARCH_BACKEND="onnx",
    )
    assert "no ONNX export of 'sentence-transformers/all-MiniLM-L6-v2'" in refusal
    assert f"Make it with: python -m indexer export-onnx --out {tmp_path / 'no-export'}" in refusal

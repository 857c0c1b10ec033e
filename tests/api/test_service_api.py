from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.service import SearchService, StartupError
from app.settings import Settings
from tests.utils.api import wait_until_ready
from tests.utils.fakes import HashingEmbedder
from tests.utils.seeds import OPPOSITION_DOC, RUSSIA_DOC


def test_health_ready_and_info(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready", "detail": None}
    info = client.get("/info").json()
    assert info["model"] == "test/hashing-64"
    assert info["dimension"] == 64
    assert info["documents"] == 2
    assert info["passages"] > 2
    assert info["index_format_version"] == 3
    assert info["seq"] == 0
    assert info["writes"] == "no key may write (SEARCH_API_KEY, SEARCH_API_KEYS_FILE)"
    assert info["chunking"] == {"max_tokens": 64, "overlap": 0.2, "segmenter": "nupunkt"}
    assert info["keyword"]["stemmer"] == "english"
    assert info["title_prefix"] is True
    assert info["default_mode"] == "hybrid"
    assert info["fusion"] == {"method": "convex", "rrf_k": 60, "semantic_weight": 0.5}
    assert info["version"] == "0.1.0"


def test_ready_is_503_until_the_model_has_loaded(settings: Settings) -> None:
    release = threading.Event()

    def slow_model(name: str) -> HashingEmbedder:
        release.wait(10)
        return HashingEmbedder(name)

    with TestClient(create_app(settings, slow_model)) as client:
        assert client.get("/health").status_code == 200
        waiting = client.get("/ready")
        assert waiting.status_code == 503
        assert waiting.json() == {"status": "unavailable", "detail": "loading the model"}
        loading = client.get("/search", params={"q": "x"})
        assert loading.status_code == 503
        assert loading.headers["retry-after"] == "2"
        assert client.get("/documents").status_code == 200  # the index itself is already open
        release.set()
        wait_until_ready(client)
        assert client.get("/search", params={"q": "x"}).status_code == 200


def test_a_model_that_fails_to_load_keeps_the_service_unready_with_the_reason(
    settings: Settings,
) -> None:
    def broken_model(name: str) -> HashingEmbedder:
        raise OSError("weights missing")

    with TestClient(create_app(settings, broken_model)) as client:
        for _ in range(100):
            body = client.get("/ready").json()
            if body["detail"] != "loading the model":
                break
            threading.Event().wait(0.02)
        assert body == {
            "status": "unavailable",
            "detail": "loading model 'test/hashing-64' failed: weights missing",
        }
        assert client.get("/search", params={"q": "x"}).status_code == 503


def test_documents_list_titles_sizes_and_passage_counts(client: TestClient) -> None:
    body = client.get("/documents").json()
    assert body["total"] == 2
    assert [d["doc_id"] for d in body["documents"]] == [OPPOSITION_DOC, RUSSIA_DOC]
    russia = body["documents"][1]
    assert russia["title"].startswith("Mike Pompeo Calls Russia")
    assert russia["chars"] == len((Path("seeds") / RUSSIA_DOC).read_bytes().decode("utf-8"))
    assert russia["passages"] > 1
    page = client.get("/documents", params={"limit": 1, "offset": 1}).json()
    assert page["total"] == 2
    assert [d["doc_id"] for d in page["documents"]] == [RUSSIA_DOC]


def test_a_document_has_its_full_text_and_passage_spans(client: TestClient) -> None:
    body = client.get(f"/documents/{RUSSIA_DOC}").json()
    assert body["text"] == (Path("seeds") / RUSSIA_DOC).read_bytes().decode("utf-8")
    assert body["chars"] == len(body["text"])
    assert [p["chunk_id"] for p in body["passages"]] == list(range(len(body["passages"])))
    assert body["passages"][0]["start"] == 0


def test_an_unknown_document_is_404_json(client: TestClient) -> None:
    response = client.get("/documents/nope.txt")
    assert response.status_code == 404
    assert response.json() == {"detail": "no document with id 'nope.txt'"}


def test_docs_and_openapi_are_served_without_a_cdn(client: TestClient) -> None:
    docs = client.get("/docs").text
    assert "/static-offline-docs/swagger-ui-bundle.js" in docs
    assert "cdn" not in docs.lower()
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    assert "/static-offline-docs/redoc.standalone.js" in client.get("/redoc").text
    spec = client.get("/openapi.json").json()
    examples = spec["paths"]["/search"]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ]
    assert examples["simple"]["value"]["query"] == "Russian military presence"
    assert {"/search", "/documents", "/documents/{doc_id}", "/health", "/ready", "/info"} <= set(
        spec["paths"]
    )


def test_optional_query_parameters_are_documented_without_null(client: TestClient) -> None:
    """So Swagger UI offers a dropdown, a list editor and a number box, not free text."""
    spec = client.get("/openapi.json").json()
    parameters = spec["paths"]["/search"]["get"]["parameters"]
    params = {p["name"]: p["schema"] for p in parameters if "schema" in p}
    assert params["group_by"]["enum"] == ["document"]
    assert params["source"]["type"] == "array"
    assert params["min_score"]["type"] == "number"
    assert not any("anyOf" in params[name] for name in ("group_by", "source", "min_score"))
    assert client.get("/search", params={"q": "x", "group_by": "passage"}).status_code == 422


def test_a_root_path_prefixes_docs_assets_and_openapi(settings: Settings) -> None:
    # The server sets the root path (uvicorn --root-path, or SEARCH_ROOT_PATH via python -m app).
    with TestClient(create_app(settings, HashingEmbedder), root_path="/search-api") as client:
        docs = client.get("/docs").text
        assert "/search-api/openapi.json" in docs
        assert "/search-api/static-offline-docs/swagger-ui-bundle.js" in docs
        assert client.get("/openapi.json").json()["servers"] == [{"url": "/search-api"}]


def test_metrics_are_exposed_for_prometheus(client: TestClient) -> None:
    client.get("/search", params={"q": "x"})
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert 'http_requests_total{handler="/search",method="GET",status="2xx"} 1.0' in metrics.text
    assert "process_resident_memory_bytes" in metrics.text


@pytest.mark.parametrize("damage", ["missing", "other-model"])
def test_startup_refuses_a_missing_or_mismatched_index_in_one_sentence(
    settings: Settings, tmp_path: Path, damage: str
) -> None:
    if damage == "missing":
        settings = settings.model_copy(update={"index_dir": tmp_path / "nothing-here"})
        expected = "nothing-here does not exist. Build it with: python -m indexer build"
    else:
        settings = settings.model_copy(update={"model": "sentence-transformers/all-MiniLM-L6-v2"})
        expected = "was built with model 'test/hashing-64', but SEARCH_MODEL is"
    with (
        pytest.raises(StartupError, match=expected),
        TestClient(create_app(settings, HashingEmbedder)),
    ):
        pass


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_startup_refuses_a_backend_that_cannot_run_here(
    settings: Settings, tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked before uvicorn starts: no ONNX export, or torch absent (as in the image)."""
    monkeypatch.setattr("indexer.backends.torch_backend_installed", lambda: False)
    settings = settings.model_copy(update={"backend": backend, "onnx_dir": tmp_path / "none"})
    expected = {
        "onnx": f"no ONNX export of 'test/hashing-64' in {tmp_path / 'none'}. Make it with: "
        f"python -m indexer export-onnx --out {tmp_path / 'none'} --model test/hashing-64",
        "torch": "torch and sentence-transformers are not installed here. Install them with: "
        "pip install 'semantic-search[torch]' (or set SEARCH_BACKEND=onnx)",
    }[backend]
    with pytest.raises(StartupError, match=re.escape(f"SEARCH_BACKEND={backend}: {expected}")):
        SearchService(settings).preflight()


def test_the_schema_uses_only_json_schema_keywords_for_bounds(client: TestClient) -> None:
    # pydantic writes "ge"/"le" when a validator hides a bound from it: a schema that states no
    # bound at all to clients and fuzzers.
    def keys(node: object, named: bool = False) -> set[str]:
        """Keywords in ``node``; ``named``: its keys are names (of properties), not keywords."""
        if isinstance(node, dict):
            own = set() if named else set(node)
            return own | {
                k
                for key, value in node.items()
                if named or key not in ("example", "examples")  # data, not schema
                for k in keys(value, key == "properties")
            }
        if isinstance(node, list):
            return {k for value in node for k in keys(value)}
        return set()

    found = keys(client.get("/openapi.json").json())
    assert not found & {"ge", "le", "gt", "lt", "min_length", "max_length"}
    assert {"minimum", "maximum", "maxLength"} <= found

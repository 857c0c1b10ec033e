"""Keys scoped to a tenant (SEARCH_API_KEYS_FILE): each sees and writes only its own documents.

Two write keys, tenant a and tenant b, a read key of tenant a, an unscoped read key, and the
admin key (SEARCH_API_KEY). The seed articles carry no tenant: only unscoped keys see them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.main import create_app
from app.service import SearchService, StartupError
from app.settings import Settings
from tests.utils.api import WRITE_HEADERS, article, wait_until_ready
from tests.utils.fakes import HashingEmbedder
from tests.utils.seeds import RUSSIA_DOC
from tests.utils.tenants import EVERYONE, READER_A, TENANT_A, TENANT_B, Key, write_keys_file

pytestmark = pytest.mark.api

# Every document says "troops", so every search for it can find any of them.
A_DOCS = {
    "a/one.txt": article("Alpha one", "Troops gathered at the alpha border.", section="x"),
    "a/two.txt": article("Alpha two", "Alpha troops and tanks moved north."),
}
B_DOCS = {
    "b/one.txt": article("Beta one", "Troops of beta crossed the river.", section="x"),
    "b/two.txt": article("Beta two", "Beta troops withdrew at night."),
}
OWN = {TENANT_A: set(A_DOCS), READER_A: set(A_DOCS), TENANT_B: set(B_DOCS)}
OTHER = {TENANT_A: set(B_DOCS), READER_A: set(B_DOCS), TENANT_B: set(A_DOCS)}


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return write_keys_file(tmp_path / "keys.json")


@pytest.fixture
def tenants(live_settings: Settings, keys_file: Path) -> Iterator[TestClient]:
    """The service with both tenants' documents written, each with its own key."""
    app = create_app(live_settings.model_copy(update={"api_keys_file": keys_file}), HashingEmbedder)
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_until_ready(client)
        for key, documents in ((TENANT_A, A_DOCS), (TENANT_B, B_DOCS)):
            body = {"documents": [{"doc_id": d, **doc} for d, doc in documents.items()]}
            written = client.post("/documents?refresh=wait_for", json=body, headers=key.headers)
            assert written.status_code == 200, written.text
        yield client


def ids_in(body: Any) -> set[str]:
    """Every document id a response body carries, wherever it is."""
    if isinstance(body, dict):
        found = {body["doc_id"]} if isinstance(body.get("doc_id"), str) else set()
        return found.union(*(ids_in(value) for value in body.values()))
    if isinstance(body, list):
        return set().union(*(ids_in(value) for value in body))
    return set()


def admin_get(client: TestClient, doc_id: str) -> dict[str, Any] | None:
    response = client.get(f"/documents/{doc_id}", headers=WRITE_HEADERS)
    return response.json() if response.status_code == 200 else None


def test_a_tenants_documents_carry_its_tenant(tenants: TestClient) -> None:
    for doc_id in A_DOCS:
        document = admin_get(tenants, doc_id)
        assert document is not None
        assert document["metadata"]["tenant"] == "a"
    assert admin_get(tenants, "b/one.txt")["metadata"] == {"section": "x", "tenant": "b"}  # type: ignore[index]


@pytest.mark.parametrize("key", [TENANT_A, READER_A, TENANT_B], ids=lambda key: key.name)
def test_every_read_route_shows_a_tenant_only_its_own_documents(
    tenants: TestClient, key: Key
) -> None:
    headers = key.headers
    reads = [
        tenants.get("/search", params={"q": "troops", "k": 100}, headers=headers),
        tenants.get(
            "/search", params={"q": "troops", "mode": "keyword", "k": 100}, headers=headers
        ),
        tenants.post("/search", json={"query": "troops", "k": 100}, headers=headers),
        tenants.post("/search", json={"query": "troops", "group_by": "document"}, headers=headers),
        tenants.post(
            "/search/batch",
            json={"searches": [{"query": "troops", "k": 100}, {"query": "Russia", "k": 100}]},
            headers=headers,
        ),
        tenants.get("/documents", headers=headers),
    ]
    for response in reads:
        assert response.status_code == 200, response.text
    seen = set().union(*(ids_in(response.json()) for response in reads))
    assert seen == OWN[key]  # all of its own, nothing of the other's, no seed article
    listing = reads[-1].json()
    assert listing["total"] == 2
    for doc_id in OWN[key]:
        assert tenants.get(f"/documents/{doc_id}", headers=headers).status_code == 200
    for doc_id in (*OTHER[key], RUSSIA_DOC):
        response = tenants.get(f"/documents/{doc_id}", headers=headers)
        assert response.status_code == 404
        assert response.json() == {"detail": f"no document with id {doc_id!r}"}  # as if absent


@pytest.mark.parametrize("key", [TENANT_A, TENANT_B], ids=lambda key: key.name)
def test_a_filter_cannot_reach_outside_the_scope(tenants: TestClient, key: Key) -> None:
    others = sorted(OTHER[key])
    for body in (
        {"query": "troops", "filter": {"tenant": "a" if key is TENANT_B else "b"}},
        {"query": "troops", "filter": {"doc_id": others}},
        {"query": "troops", "source": others},
        {"query": "Russia", "filter": {"doc_id": RUSSIA_DOC}},
    ):
        response = tenants.post("/search", json=body, headers=key.headers)
        assert response.status_code == 200, response.text
        assert response.json()["results"] == []
    listing = tenants.get(
        "/documents", params={"filter": json.dumps({"doc_id": others})}, headers=key.headers
    )
    assert listing.json() == {"total": 0, "documents": []}


def test_info_counts_only_the_tenants_documents(tenants: TestClient) -> None:
    scoped = tenants.get("/info", headers=TENANT_A.headers).json()
    everything = tenants.get("/info", headers=EVERYONE.headers).json()
    assert scoped["documents"] == 2
    passages = sum(
        len(tenants.get(f"/documents/{d}", headers=TENANT_A.headers).json()["passages"])
        for d in A_DOCS
    )
    assert scoped["passages"] == passages
    assert everything["documents"] > 4  # the seeds and both tenants


def test_unscoped_keys_see_every_tenant(tenants: TestClient) -> None:
    for headers in (EVERYONE.headers, WRITE_HEADERS):
        listing = tenants.get("/documents", params={"limit": 1000}, headers=headers).json()
        assert {*A_DOCS, *B_DOCS, RUSSIA_DOC} <= ids_in(listing)


def test_a_write_that_contradicts_the_scope_is_refused_and_writes_nothing(
    tenants: TestClient,
) -> None:
    sneaky = article("Sneaky", "Troops of nobody.", tenant="b")
    response = tenants.put("/documents/a/sneaky.txt", json=sneaky, headers=TENANT_A.headers)
    assert response.status_code == 403
    assert response.json() == {
        "detail": "document 'a/sneaky.txt' is outside this key's scope: its 'tenant' must "
        'match {"eq": "a"}, not "b"'
    }
    bulk = {
        "documents": [
            {"doc_id": "a/fine.txt", **article("Fine", "Fine troops.")},
            {"doc_id": "a/sneaky.txt", **sneaky},
        ]
    }
    assert tenants.post("/documents", json=bulk, headers=TENANT_A.headers).status_code == 403
    assert admin_get(tenants, "a/sneaky.txt") is None
    assert admin_get(tenants, "a/fine.txt") is None  # all or nothing


def test_a_tenant_cannot_replace_or_delete_another_tenants_document(
    tenants: TestClient,
) -> None:
    before = admin_get(tenants, "a/one.txt")
    takeover = article("Taken", "Beta owns this now.")
    response = tenants.put("/documents/a/one.txt", json=takeover, headers=TENANT_B.headers)
    assert response.status_code == 409
    assert response.json() == {
        "detail": "the id 'a/one.txt' is taken by a document outside this key's scope; "
        "choose another id"
    }
    bulk = {
        "documents": [
            {"doc_id": "b/new.txt", **article("New", "New beta troops.")},
            {"doc_id": "a/one.txt", **takeover},
        ]
    }
    assert tenants.post("/documents", json=bulk, headers=TENANT_B.headers).status_code == 409
    assert admin_get(tenants, "b/new.txt") is None  # nothing of the bulk was written
    deleted = tenants.delete("/documents/a/one.txt", headers=TENANT_B.headers)
    assert deleted.status_code == 404
    for filter in ({"doc_id": "a/one.txt"}, {"tenant": "a"}, {"section": "x"}):
        response = tenants.delete(
            "/documents", params={"filter": json.dumps(filter)}, headers=TENANT_B.headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["deleted"] == (1 if filter == {"section": "x"} else 0)
    assert admin_get(tenants, "a/one.txt") == before  # untouched by every attempt
    assert admin_get(tenants, "b/one.txt") is None  # b's own section-x document went


def test_a_tenant_replaces_and_deletes_its_own(tenants: TestClient) -> None:
    headers = TENANT_A.headers
    replaced = tenants.put(
        "/documents/a/one.txt", json=article("Alpha one", "Rewritten."), headers=headers
    )
    assert replaced.status_code == 200
    assert replaced.json()["result"] == "replaced"
    assert tenants.delete("/documents/a/two.txt", headers=headers).status_code == 204
    assert admin_get(tenants, "a/two.txt") is None


def test_a_tenants_read_key_cannot_write(tenants: TestClient) -> None:
    response = tenants.put(
        "/documents/a/new.txt", json=article("New", "New."), headers=READER_A.headers
    )
    assert response.status_code == 403
    assert response.json() == {"detail": "this API key cannot write"}
    assert tenants.delete("/documents/a/one.txt", headers=READER_A.headers).status_code == 403
    assert admin_get(tenants, "a/one.txt") is not None


def test_only_the_admin_key_snapshots_and_reindexes(tenants: TestClient) -> None:
    refused = "this API key cannot snapshot or reindex (it needs the admin role)"
    for key in (TENANT_A, EVERYONE):
        for method, url in (("GET", "/admin/snapshot"), ("GET", "/admin/reindex")):
            response = tenants.request(method, url, headers=key.headers)
            assert response.status_code == 403
            assert response.json() == {"detail": refused}
    assert tenants.get("/admin/reindex", headers=WRITE_HEADERS).status_code == 200


def test_reads_need_a_key_once_a_keys_file_is_configured(tenants: TestClient) -> None:
    assert tenants.get("/search", params={"q": "troops"}).status_code == 401
    assert tenants.get("/documents").status_code == 401
    wrong = tenants.get("/documents", headers={"X-API-Key": "nobody's"})
    assert wrong.status_code == 403
    both = {**TENANT_A.headers, "X-API-Key": TENANT_B.secret}
    mixed = tenants.get("/documents", headers=both)
    assert mixed.status_code == 403
    assert mixed.json() == {"detail": "the API keys sent belong to two callers"}


def test_the_keys_file_is_read_again_when_it_changes(tenants: TestClient, keys_file: Path) -> None:
    newcomer = Key("tenant-c", "key-of-tenant-c", "write", {"tenant": "c"})
    assert tenants.get("/documents", headers=newcomer.headers).status_code == 403
    write_keys_file(keys_file, (TENANT_A, newcomer))
    assert tenants.get("/documents", headers=newcomer.headers).status_code == 200
    assert tenants.get("/documents", headers=TENANT_B.headers).status_code == 403  # revoked
    assert tenants.get("/documents", headers=TENANT_A.headers).status_code == 200


def test_a_broken_keys_file_keeps_the_keys_in_force(
    tenants: TestClient, keys_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="app"):
        keys_file.write_text('{"keys": [{"name": "x", "sha256": "not hex"}]}')
        assert tenants.get("/documents", headers=TENANT_A.headers).status_code == 200
    assert "keeping the API keys already loaded" in caplog.text
    assert "keys.0.sha256" in caplog.text


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{", "is not a valid keys file: Expecting property name"),
        ('{"keys": [{"name": "x", "sha256": "ab"}]}', "keys.0.sha256: String should match"),
        (
            json.dumps({"keys": [{**TENANT_A.entry(), "role": "admin"}]}),
            "an admin key cannot have a filter",
        ),
        (
            json.dumps({"keys": [{**TENANT_A.entry(), "filter": {"year": {"gt": "soon"}}}]}),
            "key 'tenant-a': filter field 'year': range bounds must be numbers or ISO dates",
        ),
        (json.dumps({"keys": [TENANT_A.entry(), TENANT_A.entry()]}), "same name (tenant-a)"),
    ],
)
def test_a_bad_keys_file_stops_the_start_and_says_why(
    settings: Settings, tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    service = SearchService(settings.model_copy(update={"api_keys_file": path}), HashingEmbedder)
    with pytest.raises(StartupError, match="Cannot use SEARCH_API_KEYS_FILE") as raised:
        service.preflight()
    assert problem in str(raised.value)


def test_a_toml_keys_file(settings: Settings, tmp_path: Path) -> None:
    entry = TENANT_A.entry()
    path = tmp_path / "keys.toml"
    path.write_text(
        f'[[keys]]\nname = "{entry["name"]}"\nsha256 = "{entry["sha256"]}"\nrole = "read"\n'
        '[keys.filter]\ntenant = "a"\n'
    )
    with TestClient(
        create_app(settings.model_copy(update={"api_keys_file": path}), HashingEmbedder)
    ) as client:
        wait_until_ready(client)
        assert client.get("/documents", headers=TENANT_A.headers).json()["total"] == 0
        assert client.get("/documents").status_code == 401


# Property: whatever a tenant asks, no response carries another tenant's document.
_queries = st.sampled_from(["troops", "alpha", "beta river", "Russia", "night tanks"])
_filters = st.one_of(
    st.none(),
    st.fixed_dictionaries({"tenant": st.sampled_from(["a", "b", "c"])}),
    st.fixed_dictionaries({"doc_id": st.lists(st.sampled_from([*A_DOCS, *B_DOCS]), min_size=1)}),
    st.fixed_dictionaries({"section": st.just("x")}),
)
_requests = st.one_of(
    st.builds(
        lambda q, mode, filter, group: (
            "POST",
            "/search",
            {"query": q, "mode": mode, "k": 100, "filter": filter, "group_by": group},
        ),
        _queries,
        st.sampled_from(["semantic", "keyword", "hybrid"]),
        _filters,
        st.sampled_from([None, "document"]),
    ),
    st.builds(
        lambda filter, offset: ("GET", "/documents", {"filter": filter, "offset": offset}),
        _filters,
        st.integers(0, 3),
    ),
    st.builds(
        lambda doc_id: ("GET", f"/documents/{doc_id}", None),
        st.sampled_from([*A_DOCS, *B_DOCS, RUSSIA_DOC]),
    ),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=st.sampled_from([TENANT_A, READER_A, TENANT_B]), request=_requests)
def test_no_response_ever_carries_another_tenants_document(
    tenants: TestClient, key: Key, request: tuple[str, str, dict[str, Any] | None]
) -> None:
    method, url, body = request
    if method == "POST":
        response = tenants.post(url, json=body, headers=key.headers)
    else:
        params = {}
        if body is not None:
            params = {"offset": body["offset"]}
            if body["filter"] is not None:
                params["filter"] = json.dumps(body["filter"])
        response = tenants.get(url, params=params, headers=key.headers)
    assert response.status_code in (200, 404), response.text
    assert ids_in(response.json()) <= OWN[key]
    # A 404 names the id the client asked for (its own input): nothing else may appear.
    shown = response.text.replace(url.removeprefix("/documents/"), "")
    assert not any(doc_id in shown for doc_id in (*OTHER[key], RUSSIA_DOC))

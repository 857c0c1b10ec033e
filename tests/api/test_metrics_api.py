"""/metrics: the index's figures, writes by outcome and search latency by mode."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.utils.api import article

pytestmark = pytest.mark.api


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_index_and_write_metrics(live_client: TestClient) -> None:
    before = scrape(live_client)
    documents = before[("search_index_documents", ())]
    passages = before[("search_index_passages", ())]
    seq = before[("search_index_seq", ())]
    assert documents > 0
    assert passages >= documents
    for outcome in ("created", "replaced", "deleted", "not_found", "failed"):
        assert before[("search_writes_total", (("outcome", outcome),))] == 0
    built = before[("search_index_build_timestamp_seconds", ())]
    assert time.time() - 3600 < built <= time.time()
    translog = live_client.app.state.service.settings.index_dir / "translog"  # type: ignore[attr-defined]
    on_disk = sum(path.stat().st_size for path in translog.iterdir())
    assert before[("search_translog_bytes", ())] == on_disk
    assert before[("search_index_merges_total", ())] == 0
    assert not any(name == "search_index_last_merge_timestamp_seconds" for name, _ in before)

    wait = {"refresh": "wait_for"}
    text = "A new article about sanctions. " * 40
    assert live_client.put("/documents/a", json=article("A", text), params=wait).status_code == 201
    assert live_client.put("/documents/a", json=article("A", text), params=wait).status_code == 200
    assert live_client.put("/documents/b", json=article("B", text), params=wait).status_code == 201
    assert live_client.delete("/documents/b").status_code == 204
    assert live_client.delete("/documents/b").status_code == 404

    after = scrape(live_client)
    writes = {
        labels[0][1]: value
        for (name, labels), value in after.items()
        if name == "search_writes_total"
    }
    assert writes == {"created": 2, "replaced": 1, "deleted": 1, "not_found": 1, "failed": 0}
    assert after[("search_index_documents", ())] == documents + 1
    assert after[("search_index_passages", ())] > passages
    assert after[("search_index_seq", ())] == seq + 4
    assert after[("search_translog_bytes", ())] > before[("search_translog_bytes", ())]


def test_a_failed_write_is_counted(live_client: TestClient) -> None:
    service = live_client.app.state.service  # type: ignore[attr-defined]

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk on fire")

    service.store.put = broken
    response = live_client.put("/documents/x", json=article("X", "Text."))
    assert response.status_code == 500
    assert scrape(live_client)[("search_writes_total", (("outcome", "failed"),))] == 1


def test_search_latency_by_mode(client: TestClient) -> None:
    for mode in ("hybrid", "keyword", "keyword"):
        assert client.get("/search", params={"q": "war", "mode": mode}).status_code == 200
    searches = [{"query": "war"}, {"query": "peace", "mode": "semantic"}]
    assert client.post("/search/batch", json={"searches": searches}).status_code == 200
    metrics = scrape(client)
    count = "search_query_duration_seconds_count"
    assert metrics[(count, (("mode", "hybrid"),))] == 1
    assert metrics[(count, (("mode", "keyword"),))] == 2
    assert metrics[(count, (("mode", "batch"),))] == 1
    assert (count, (("mode", "semantic"),)) not in metrics
    assert metrics[("search_query_duration_seconds_sum", (("mode", "keyword"),))] > 0

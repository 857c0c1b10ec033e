"""The milvus_server fixture: a real Milvus standalone server answers pymilvus, and stopping one
leaves no process and no listening port behind."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
from pymilvus import DataType, MilvusClient

import indexer.stores.milvus.claims as milvus_claims
from harness.milvus import (
    STOP_SECONDS,
    MilvusServer,
    port_is_free,
    process_tree,
    start_milvus,
    stop_milvus,
)
from harness.procfs import alive
from indexer.build import BuildParams, new_manifest
from indexer.manifest import Manifest
from indexer.stores.base import StoreExistsError, StoreMissingError
from indexer.stores.milvus.client import MilvusTarget, collection_names
from indexer.stores.milvus.store import MilvusStore
from indexer.stores.milvus.versions import read_manifest
from tests.utils.corpus import DIM, corpus
from tests.utils.milvus_server import require_milvus_server

pytestmark = pytest.mark.milvus

ROWS = [
    {"id": 1, "doc_id": "a", "meta": {"section": "world"}, "vector": [1.0, 0.0, 0.0, 0.0]},
    {"id": 2, "doc_id": "a", "meta": {"section": "world"}, "vector": [0.9, 0.1, 0.0, 0.0]},
    {"id": 3, "doc_id": "b", "meta": {"section": "sport"}, "vector": [0.8, 0.0, 0.2, 0.0]},
    {"id": 4, "doc_id": "c", "meta": {"section": "world"}, "vector": [0.7, 0.0, 0.0, 0.3]},
    {"id": 5, "doc_id": "c", "meta": {"section": "sport"}, "vector": [0.0, 1.0, 0.0, 0.0]},
]


def test_collection_round_trip(milvus_server: MilvusServer) -> None:
    """The schema a Milvus store needs: INT64 key, VARCHAR, JSON, a 4-d vector under HNSW/IP."""
    client = MilvusClient(uri=milvus_server.uri)
    assert client.get_server_version().startswith("v2.3.5")
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=64)
    schema.add_field("meta", DataType.JSON)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=4)
    index = client.prepare_index_params()
    index.add_index(
        field_name="vector",
        index_type="HNSW",
        metric_type="IP",
        params={"M": 8, "efConstruction": 64},
    )
    # Strong: a search sees the writes before it (at ~200 ms a search on this server).
    client.create_collection(
        "fixture_check", schema=schema, index_params=index, consistency_level="Strong"
    )
    try:
        assert client.insert("fixture_check", ROWS)["insert_count"] == len(ROWS)

        def search(expression: str) -> list[tuple[int, str]]:
            [hits] = client.search(
                "fixture_check",
                data=[[1.0, 0.0, 0.0, 0.0]],
                limit=10,
                filter=expression,
                output_fields=["doc_id", "meta"],
                search_params={"metric_type": "IP", "params": {"ef": 32}},
            )
            return [(hit["id"], hit["entity"]["doc_id"]) for hit in hits]

        assert search('doc_id in ["a", "b"]') == [(1, "a"), (2, "a"), (3, "b")]
        assert search('meta["section"] == "world"') == [(1, "a"), (2, "a"), (4, "c")]
        client.delete("fixture_check", filter='doc_id == "a"')
        assert search('meta["section"] == "world"') == [(4, "c")]
        assert sorted(row["id"] for row in client.query("fixture_check", filter="id > 0")) == [
            3,
            4,
            5,
        ]
    finally:
        client.drop_collection("fixture_check")
        client.close()


@pytest.mark.parametrize("stubborn", [False, True], ids=["sigterm", "sigkill"])
def test_stop_leaves_nothing_behind(tmp_path: Path, stubborn: bool) -> None:
    """A server of its own: after stop_milvus no process of its tree runs and its ports are free.

    SIGTERM: with a collection loaded, which Milvus's default common.gracefulStopTimeout (1800 s)
    would keep running. Stubborn: Milvus is stopped (SIGSTOP), so that SIGTERM cannot end it: it
    must be found by its pid and killed."""
    require_milvus_server()
    server = start_milvus(tmp_path / "milvus")
    processes = process_tree(server.process.pid)
    # milvus-server (Python) and its child, milvus run standalone (Go).
    assert len(processes) == 2, processes
    [milvus] = [p for p in processes if p.pid != server.process.pid]
    assert f"{tmp_path}/milvus/bin/milvus" in Path(f"/proc/{milvus.pid}/cmdline").read_text()
    assert not port_is_free(server.ports["proxy-port"])
    if stubborn:
        os.kill(milvus.pid, signal.SIGSTOP)
    else:
        client = MilvusClient(uri=server.uri)
        client.create_collection("loaded", dimension=4, consistency_level="Strong")
        client.insert("loaded", [{"id": row["id"], "vector": row["vector"]} for row in ROWS])
        assert len(client.query("loaded", filter="id > 0")) == len(ROWS)
        client.close()

    stopped = stop_milvus(server, seconds=2 if stubborn else STOP_SECONDS)

    assert stopped.remaining == []
    assert stopped.killed == ([milvus] if stubborn else [])
    assert not any(alive(p) for p in processes)
    assert server.process.returncode == -signal.SIGTERM
    busy = {name: port for name, port in server.ports.items() if not port_is_free(port)}
    assert busy == {}


def test_a_store_whose_meta_collection_has_no_index_yet_is_one_being_built(
    milvus_server: MilvusServer,
) -> None:
    """A build creates each collection, then its index. A replica waiting for another's build
    (``build --if-stale``) that looks in between cannot load the meta collection: that is a
    store not yet complete, to wait for, not a failure (it once ended a container's start)."""
    target = MilvusTarget(uri=milvus_server.uri, collection="half_built")
    meta = collection_names(target)[2]
    client = MilvusClient(uri=milvus_server.uri)
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("key", DataType.VARCHAR, max_length=64, is_primary=True)
    schema.add_field("_v", DataType.FLOAT_VECTOR, dim=2)
    client.create_collection(meta, schema=schema)
    try:
        with pytest.raises(StoreMissingError, match="is being created"):
            read_manifest(client, target)
        assert not MilvusStore.exists(target)
    finally:
        client.drop_collection(meta)
        client.close()


def new_target(milvus_server: MilvusServer) -> MilvusTarget:
    return MilvusTarget(uri=milvus_server.uri, collection=f"claims_{uuid.uuid4().hex[:8]}")


def manifest_for_tests() -> Manifest:
    params = BuildParams(index_factory="FLAT", search_params="", store="milvus")
    return new_manifest("test/claims", DIM, params, "claims")


def test_replicas_building_one_store_at_once_fill_it_once(milvus_server: MilvusServer) -> None:
    """A 2.3 server accepts a second create of a collection with the same schema, so two
    replicas finding the store missing at the same moment would both fill it (every document
    twice). The build claim lets exactly one of them build; the other is refused, as a store
    that already holds a build, and waits for it (python -m indexer build --if-stale)."""
    target = new_target(milvus_server)
    documents = corpus(30)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def build() -> None:
        start.wait()
        try:
            MilvusStore.create(target, manifest_for_tests(), documents).close()
            outcomes.append("built")
        except StoreExistsError as error:
            outcomes.append("refused" if "already holds" in str(error) else str(error))

    try:
        threads = [threading.Thread(target=build) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert sorted(outcomes) == ["built", "refused"]
        store = MilvusStore.open(target, writable=False)
        try:
            reader = store.reader()
            assert reader.document_count == len(documents)
            assert reader.passage_count == sum(len(d.passages) for d in documents)
        finally:
            store.close()
        assert not milvus_claims.build_claims(MilvusClient(uri=milvus_server.uri), target)
    finally:
        MilvusStore.drop(target)


def test_a_live_claim_means_a_build_is_under_way_and_a_stale_one_is_ignored(
    milvus_server: MilvusServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = new_target(milvus_server)
    client = MilvusClient(uri=milvus_server.uri)
    try:
        assert not MilvusStore.being_built(target)
        other = milvus_claims.claim_build(client, target)  # another replica's build, under way
        assert other is not None
        assert MilvusStore.being_built(target)
        with pytest.raises(StoreExistsError, match="build in progress"):
            MilvusStore.create(target, manifest_for_tests(), corpus(3))
        assert milvus_claims.build_claims(client, target) == [
            other
        ]  # the refused one dropped its own
        # A builder that crashed long ago: its claim no longer holds anyone back.
        time.sleep(0.1)
        monkeypatch.setattr(milvus_claims, "BUILD_CLAIM_SECONDS", 0.05)
        # Stale by the clock, though no newer claim stands beside it: nothing is being built.
        assert not MilvusStore.being_built(target)
        MilvusStore.create(target, manifest_for_tests(), corpus(3)).close()
        assert MilvusStore.exists(target)
        assert milvus_claims.build_claims(client, target) == []
    finally:
        MilvusStore.drop(target)
        assert not milvus_claims.build_claims(client, target)
        client.close()

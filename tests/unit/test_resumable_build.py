"""The embedding cache and resumable builds, with the fake model: a build killed midway (here an
engine that fails after some batches) and run again with ``resume`` embeds only the rest and
ends with the index an uninterrupted build makes; a rebuild with new BM25 parameters or a
small edit embeds only the passages whose text changed."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer.build import BuildError, build_index
from indexer.build_progress import LOG_INTERVAL, BuildMeter
from indexer.embedding import Vectors
from indexer.embedding_cache import EmbeddingCache
from indexer.engines.base import Positions
from indexer.engines.local import LocalEngine
from indexer.ingest import Chunked, Preparer
from indexer.keyword import KeywordParams
from indexer.loading import Corpus
from indexer.stores.milvus.store import MilvusStore
from indexer.types import Document, Passage
from tests.utils.fakes import HashingEmbedder
from tests.utils.seeds import SEED_PARAMS, all_passages, index_vectors

pytestmark = pytest.mark.unit

MODEL = "test/hashing-64 (fake)"
COMMIT = 32  # texts per committed batch


def _corpus(count: int = 12) -> Corpus:
    return Corpus(
        [
            Document(
                doc_id=f"doc-{n:02d}",
                title=f"Report {n}",
                text=" ".join(f"word{n}x{i} about subject {i % 7}." for i in range(150)),
            )
            for n in range(count)
        ]
    )


class _KilledError(Exception):
    pass


class _DyingEngine:
    """The local engine that stops, as a killed build does, after ``batches`` batches."""

    name = "local"

    def __init__(self, embedder: HashingEmbedder, batches: int) -> None:
        self.inner = LocalEngine(embedder, commit_texts=COMMIT)
        self.batches = batches

    def chunk(
        self, preparer: Preparer, documents: Sequence[Document], meter: BuildMeter
    ) -> Chunked:
        return self.inner.chunk(preparer, documents, meter)

    def embed(self, texts: Sequence[str]) -> Iterator[tuple[Positions, Vectors]]:
        for count, batch in enumerate(self.inner.embed(texts)):
            if count == self.batches:
                raise _KilledError
            yield batch

    def describe(self) -> str:
        return "dying"

    def close(self) -> None:
        pass


def _contents(index: Path) -> tuple[list[Passage], np.ndarray]:
    return all_passages(index), index_vectors(index)


def test_the_cache_keeps_vectors_by_model_and_text(tmp_path: Path) -> None:
    vectors = np.eye(3, 4, dtype=np.float32)
    with EmbeddingCache(tmp_path / "c.sqlite", MODEL) as cache:
        keys = [cache.key(t) for t in ("a", "b", "c")]
        cache.put(keys, vectors)
        assert cache.key("a") != EmbeddingCache(tmp_path / "c.sqlite", "other").key("a")
    with EmbeddingCache(tmp_path / "c.sqlite", MODEL) as reopened:  # durable across opens
        found = reopened.get([*keys, reopened.key("d")], 4)
        assert set(found) == set(keys)
        np.testing.assert_array_equal(found[keys[1]], vectors[1])
        assert reopened.get(keys, 8) == {}  # another dimension: a miss, not a wrong vector


def test_a_rebuild_embeds_only_the_passages_whose_text_changed(tmp_path: Path) -> None:
    corpus, embedder = _corpus(), HashingEmbedder()
    with EmbeddingCache(tmp_path / "c.sqlite", MODEL) as cache:
        first = build_index(
            corpus, tmp_path / "a", embedder, SEED_PARAMS, source_label="t", cache=cache
        )
        assert first.embedding is not None
        total = first.embedding.passages
        assert (first.embedding.cached, first.embedding.embedded) == (0, total)

        # New BM25 parameters: nothing to embed.
        bm25 = dataclasses.replace(SEED_PARAMS, keyword=KeywordParams(k1=0.9))
        again = build_index(corpus, tmp_path / "b", embedder, bm25, source_label="t", cache=cache)
        assert again.embedding is not None
        assert (again.embedding.cached, again.embedding.embedded) == (total, 0)
        assert again.embedding.hit_rate == 1.0
        assert "0 embedded, " in again.embedding.summary()
        assert "100.0% hit rate" in again.embedding.summary()

        # One document's last sentence edited: only its passages that changed.
        docs = list(corpus.documents)
        docs[3] = dataclasses.replace(docs[3], text=docs[3].text + " A new closing line.")
        edited = build_index(
            Corpus(docs), tmp_path / "c", embedder, SEED_PARAMS, source_label="t", cache=cache
        )
        assert edited.embedding is not None
        assert 1 <= edited.embedding.embedded <= 2
        assert edited.embedding.cached == edited.embedding.passages - edited.embedding.embedded
    assert _contents(tmp_path / "b")[0] == _contents(tmp_path / "a")[0]


def test_a_build_that_dies_resumes_where_it_stopped_and_ends_with_the_same_index(
    tmp_path: Path,
) -> None:
    corpus, embedder = _corpus(), HashingEmbedder()
    build_index(corpus, tmp_path / "whole", embedder, SEED_PARAMS, source_label="t")
    with EmbeddingCache(tmp_path / "c.sqlite", MODEL) as cache:
        with pytest.raises(_KilledError):
            build_index(
                corpus,
                tmp_path / "index",
                embedder,
                SEED_PARAMS,
                source_label="t",
                cache=cache,
                engine=_DyingEngine(embedder, batches=2),
            )
        unfinished = cache.unfinished("the index at " + str(tmp_path / "index"))
        assert unfinished is not None
        assert unfinished.embedded == 2 * COMMIT  # what it committed, durable
        assert unfinished.total > unfinished.embedded
        assert not (tmp_path / "index").exists()

        embedder.encoded.clear()
        resumed = build_index(
            corpus,
            tmp_path / "index",
            embedder,
            SEED_PARAMS,
            source_label="t",
            cache=cache,
            resume=True,
        )
        assert resumed.embedding is not None
        assert resumed.embedding.resumed == unfinished
        assert resumed.embedding.cached == unfinished.embedded
        assert resumed.embedding.embedded == unfinished.total - unfinished.embedded
        assert sum(map(len, embedder.encoded)) == resumed.embedding.embedded
        assert cache.unfinished("the index at " + str(tmp_path / "index")) is None  # done

    whole, resumed_index = _contents(tmp_path / "whole"), _contents(tmp_path / "index")
    assert resumed_index[0] == whole[0]
    np.testing.assert_allclose(resumed_index[1], whole[1], atol=1e-6)


def test_resume_refuses_when_there_is_nothing_to_resume_or_the_build_was_of_something_else(
    tmp_path: Path,
) -> None:
    corpus, embedder = _corpus(4), HashingEmbedder()
    with EmbeddingCache(tmp_path / "c.sqlite", MODEL) as cache:
        with pytest.raises(
            BuildError, match=r"no unfinished build of the index at .*nothing to resume"
        ):
            build_index(
                corpus,
                tmp_path / "i",
                embedder,
                SEED_PARAMS,
                source_label="t",
                cache=cache,
                resume=True,
            )
        with pytest.raises(_KilledError):
            build_index(
                corpus,
                tmp_path / "i",
                embedder,
                SEED_PARAMS,
                source_label="t",
                cache=cache,
                engine=_DyingEngine(embedder, batches=0),
            )
        other = dataclasses.replace(SEED_PARAMS, title_prefix=False)
        with pytest.raises(BuildError, match="was of another corpus or with other settings"):
            build_index(
                corpus, tmp_path / "i", embedder, other, source_label="t", cache=cache, resume=True
            )
        fewer = Corpus(list(corpus.documents)[:3])
        with pytest.raises(BuildError, match="was of another corpus"):
            build_index(
                fewer,
                tmp_path / "i",
                embedder,
                SEED_PARAMS,
                source_label="t",
                cache=cache,
                resume=True,
            )


def test_json_progress_events_say_how_much_is_done_and_what_is_left(tmp_path: Path) -> None:
    out = io.StringIO()
    now = [0.0]
    meter = BuildMeter("json", out, clock=lambda: now[0])
    meter.phase("embedding", total=100, done=40)
    now[0] += 3.0  # more than JSON_INTERVAL: each advance reports
    meter.advance(30)
    meter.advance(1)  # too soon after the last: no event
    now[0] += 3.0
    meter.advance(29)
    meter.close()
    meter.event("built", passages=100)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["progress"] * 4 + ["built"]
    assert [e["done"] for e in events[:4]] == [40, 70, 100, 100]
    assert all(e["total"] == 100 for e in events[:4])
    assert events[1]["rate"] == 10.0  # 30 passages in 3 s; the 40 resumed ones don't count
    assert events[1]["eta_seconds"] == 3.0
    assert events[2]["rate"] == 10.0
    assert events[-1] == {"event": "built", "passages": 100}


def test_a_log_gets_a_progress_line_a_minute() -> None:
    log = io.StringIO()
    now = [0.0]
    meter = BuildMeter("log", log, clock=lambda: now[0])
    meter.phase("embedding", total=600)
    for _ in range(600):
        now[0] += LOG_INTERVAL / 100  # 100 passages a minute: six minutes
        meter.advance(1)
    meter.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert 6 <= len(lines) <= 9  # the start, one a minute, the end
    assert all(line.startswith("embedding:") for line in lines)
    assert "600/600" in lines[-1]


@pytest.mark.lite
def test_a_milvus_build_that_died_while_inserting_is_resumed_over_what_it_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed between creating its collections and writing its manifest, a Milvus build leaves
    half-filled collections: a plain rebuild refuses to replace them, a resumed one replaces
    them (nothing of a complete store is at stake: it has no manifest)."""
    from indexer.stores.milvus import store as milvus_store
    from indexer.stores.milvus.client import MilvusTarget

    corpus, embedder = _corpus(4), HashingEmbedder()
    target = MilvusTarget(uri=str(tmp_path / "milvus.db"), collection="search")
    params = dataclasses.replace(SEED_PARAMS, store="milvus", index_factory="FLAT")
    inserted = milvus_store.insert_documents

    def dies_after_some(client: Any, version: Any, documents: Any, *rest: Any) -> int:
        inserted(client, version, list(documents)[:2], *rest)
        raise _KilledError

    with EmbeddingCache(tmp_path / "c.sqlite", MODEL) as cache:
        monkeypatch.setattr(milvus_store, "insert_documents", dies_after_some)
        with pytest.raises(_KilledError):
            build_index(corpus, target, embedder, params, source_label="t", cache=cache)
        monkeypatch.setattr(milvus_store, "insert_documents", inserted)
        with pytest.raises(BuildError, match="already holds"):
            build_index(corpus, target, embedder, params, source_label="t", cache=cache)
        resumed = build_index(
            corpus, target, embedder, params, source_label="t", cache=cache, resume=True
        )
    assert resumed.embedding is not None
    assert resumed.embedding.embedded == 0  # every vector was made before it died
    assert resumed.manifest.counts.documents == 4
    store = MilvusStore.open(target, writable=False)
    try:
        assert store.reader().document_count == 4
    finally:
        store.close()


@pytest.mark.parametrize("cached", [True, False], ids=["cache", "no-cache"])
def test_a_text_that_occurs_twice_is_embedded_once(tmp_path: Path, cached: bool) -> None:
    """Syndicated copies of an article: the same passages under other ids. Each text is
    embedded once and every copy gets its vector, with or without a cache."""
    original = _corpus(3).documents
    copies = [dataclasses.replace(d, doc_id=f"copy-of-{d.doc_id}") for d in original[:2]]
    corpus, embedder = Corpus([*original, *copies]), HashingEmbedder()
    with EmbeddingCache(tmp_path / "c.sqlite", MODEL) as cache:
        report = build_index(
            corpus,
            tmp_path / "index",
            embedder,
            SEED_PARAMS,
            source_label="t",
            cache=cache if cached else None,
        )
    stats = report.embedding
    assert stats is not None
    texts = [text for batch in embedder.encoded for text in batch]
    assert len(texts) == len(set(texts)) == stats.embedded  # no text twice
    assert stats.repeated > 0
    assert stats.embedded + stats.repeated == stats.passages
    assert "repeating another's text" in stats.summary()
    passages, vectors = _contents(tmp_path / "index")
    row = {(p.doc_id, p.start): n for n, p in enumerate(passages)}
    copies_rows = [n for n, p in enumerate(passages) if p.doc_id.startswith("copy-of-")]
    assert len(copies_rows) == stats.repeated
    for n in copies_rows:
        source = row[(passages[n].doc_id.removeprefix("copy-of-"), passages[n].start)]
        np.testing.assert_array_equal(vectors[n], vectors[source])

"""Fixtures for every tier: the real model and the seed index built with it (once a session),
the fake embedder and a seed index built with it (per test). Helpers live in ``tests/utils``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock

from indexer.build import BuildParams, build_index
from indexer.embedding import DEFAULT_MODEL, SentenceTransformerEmbedder
from indexer.loading import load_corpus
from indexer.stores.faiss.store import FaissStore
from tests.utils.fakes import HashingEmbedder
from tests.utils.paths import ARTIFACTS, SEEDS
from tests.utils.seeds import SEED_PARAMS

# The milvus_server fixture, and the Ray ones (ray_cluster, ray_driver), for any test.
pytest_plugins = ["tests.utils.milvus_server", "tests.utils.ray"]


@pytest.fixture(autouse=True)
def _own_embedding_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's builds (the CLI's, and processes it starts) get a cache of their own: one
    shared with other tests, or data/ of the checkout, would make a build's counts depend on
    what ran before."""
    monkeypatch.setenv("SEARCH_EMBEDDING_CACHE", str(tmp_path / "embedding-cache.sqlite"))


@pytest.fixture(scope="session")
def real_embedder() -> SentenceTransformerEmbedder:
    """The real model, loaded once per test session (a few seconds)."""
    return SentenceTransformerEmbedder(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def real_index_dir(
    tmp_path_factory: pytest.TempPathFactory, real_embedder: SentenceTransformerEmbedder
) -> Path:
    """The seed articles indexed with the real model and default settings."""
    out = tmp_path_factory.mktemp("real") / "index"
    build_index(load_corpus(SEEDS), out, real_embedder, BuildParams(), source_label=str(SEEDS))
    return out


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The real model exported for ONNX Runtime, the service's default backend: once for all
    pytest-xdist workers (the directory above each worker's base), as the xdist docs do it, for
    an export costs 15 to 30 s of a core."""
    from indexer.onnx_embedding import export_onnx

    session = tmp_path_factory.getbasetemp()  # a worker's is inside the session's
    shared = (session if worker_id == "master" else session.parent) / "onnx-export"
    with FileLock(f"{shared}.lock"):
        if not (shared / "export.json").exists():  # written last: marks a complete export
            export_onnx(DEFAULT_MODEL, shared)
    return shared


@pytest.fixture
def fake_embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
def seed_index_dir(tmp_path: Path, fake_embedder: HashingEmbedder) -> Path:
    """The seed articles indexed with the fake embedder (small windows, so several passages)."""
    out = tmp_path / "index"
    build_index(load_corpus(SEEDS), out, fake_embedder, SEED_PARAMS, source_label="seeds")
    return out


@pytest.fixture
def seed_store(seed_index_dir: Path) -> Iterator[FaissStore]:
    """The seed index, opened for reading."""
    store = FaissStore.open(seed_index_dir, writable=False)
    yield store
    store.close()


@pytest.hookimpl(tryfirst=True)  # before -m selects by these markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tier of a test is the folder it lives in: unit, contract, api, e2e or deploy."""
    tiers = {"unit", "contract", "api", "e2e", "deploy"}
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if folder in tiers:
            item.add_marker(getattr(pytest.mark, folder))


def pytest_collection_finish(session: pytest.Session) -> None:
    """With ``--dist loadgroup``, every group must have reached pytest-xdist: were one ignored
    (as with pytest 9.2, pytest-dev/pytest-xdist#1386), each worker would start a Milvus server
    and build the image of its own, silently."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    for item in session.items:
        if item.get_closest_marker("xdist_group") is not None and "@" not in item.nodeid:
            raise pytest.UsageError(f"pytest-xdist ignored the xdist_group of {item.nodeid}")


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """With ``--durations N`` (make check), the N slowest setups, calls and teardowns go to
    test-artifacts/durations.txt too, beside the JUnit report: a record of every full run."""
    count = config.getoption("durations") or 0
    if count <= 0:
        return
    reports = [
        report
        for reports in terminalreporter.stats.values()
        for report in reports
        if isinstance(report, pytest.TestReport)
    ]
    slowest = sorted(reports, key=lambda report: report.duration, reverse=True)[:count]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "durations.txt").write_text(
        "".join(f"{r.duration:8.2f}s {r.when:<8} {r.nodeid}\n" for r in slowest)
    )

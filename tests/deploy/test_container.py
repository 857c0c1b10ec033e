"""The container image, built and run with podman: healthy, non-root, proxied, stops cleanly."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.milvus import MilvusServer
from indexer.stores.faiss.layout import read_current_manifest
from indexer.stores.milvus.client import MilvusTarget
from indexer.stores.milvus.store import MilvusStore
from tests.utils.deploy import require
from tests.utils.mcp_client import mcp_session, run, structured
from tests.utils.paths import ARTIFACTS, REPO
from tests.utils.processes import free_port, running_nginx, wait_for
from tests.utils.seeds import RUSSIA_DOC

# One worker builds the image once, beside the Milvus server one of its tests needs.
pytestmark = pytest.mark.xdist_group("milvus")

IMAGE = "localhost/semantic-search:test"
# podman reports sizes in decimal units (its "674 MB" is 674e6 bytes); docs/deployment.md has
# the breakdown.
MAX_IMAGE_BYTES = 800_000_000
Container = tuple[str, int, float]


def podman(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", "--runtime", "runc", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


def healthy(name: str) -> bool:
    """podman runs HEALTHCHECKs on a systemd timer, and there is none here: run it on demand."""
    return podman("healthcheck", "run", name, check=False).returncode == 0


@pytest.fixture(scope="module")
def image() -> str:
    require("podman")
    build = subprocess.run(
        ["bash", "scripts/podman-setup.sh"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert build.returncode == 0, build.stderr
    started = time.monotonic()
    build = subprocess.run(
        ["bash", "scripts/build-image.sh", IMAGE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    size = podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "image.txt").write_text(
        f"image {IMAGE}\nsize_bytes {size}\nbuild_seconds {time.monotonic() - started:.0f}\n"
    )
    return IMAGE


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[Container]:
    """A running container under /search-api; yields its name, port, and seconds to healthy
    (counted from `podman run` returning)."""
    name, port = f"search-test-{uuid.uuid4().hex[:8]}", free_port()
    podman(
        "run", "-d", "--name", name,
        "-e", f"PORT={port}", "-e", "SEARCH_ROOT_PATH=/search-api",
        image,
    )  # fmt: skip
    try:
        seconds = wait_for(
            partial(healthy, name), "the container's own HEALTHCHECK passing", seconds=120
        )
        yield name, port, seconds
    finally:
        podman("rm", "-f", name, check=False)


def test_the_container_becomes_healthy_by_its_own_healthcheck(
    container: Container,
) -> None:
    name, _, seconds = container
    assert (
        podman("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip() == "healthy"
    )
    (ARTIFACTS / "container-healthy-seconds.txt").write_text(f"{seconds:.1f}\n")


def test_it_runs_as_a_non_root_user(container: Container) -> None:
    name, _, _ = container
    assert podman("exec", name, "id", "-u").stdout.strip() not in ("", "0")


def test_it_answers_search_through_nginx(container: Container, tmp_path: Path) -> None:
    require("nginx")
    _, port, _ = container
    with running_nginx(tmp_path / "nginx", port) as proxy:
        response = httpx.get(
            f"{proxy}/search-api/search", params={"q": "Russian military presence"}
        )
        assert response.status_code == 200
        assert response.json()["results"][0]["doc_id"] == RUSSIA_DOC
        spec = httpx.get(f"{proxy}/search-api/openapi.json").json()
        assert spec["servers"] == [{"url": "/search-api"}]
        # The image ships the ONNX export, so it serves with the default backend.
        assert httpx.get(f"{proxy}/search-api/info").json()["backend"] == "onnx"
        # And the MCP endpoint, with the official client.
        found = run(lambda: mcp_search(f"{proxy}/search-api/mcp", "Russian military presence"))
        assert found["results"][0]["doc_id"] == RUSSIA_DOC


async def mcp_search(url: str, query: str) -> dict[str, Any]:
    async with mcp_session(url, url=url) as session:
        return await structured(session, "search", query=query)


def test_the_image_serves_with_onnx_runtime_alone(image: str) -> None:
    """The runtime venv has no torch; asking for the torch backend is refused in one sentence."""
    no_torch = "import importlib.util as u; print(u.find_spec('torch'), u.find_spec('onnxruntime'))"
    found = podman("run", "--rm", image, "python", "-c", no_torch).stdout.split()
    assert found[0] == "None"
    assert found[1] != "None"
    refused = podman("run", "--rm", "-e", "SEARCH_BACKEND=torch", image, check=False)
    assert refused.returncode == 2
    # podman adds its own log lines (time=... level=error ...: no systemd here); ours is one line.
    ours = [line for line in refused.stderr.splitlines() if line and not line.startswith("time=")]
    assert len(ours) == 1, refused.stderr
    assert "torch and sentence-transformers are not installed here" in ours[0]


def test_the_image_is_under_800_mb(image: str) -> None:
    """With the Milvus client (pymilvus, pandas, grpcio: 69 of its MB); docs/deployment.md has
    the rest."""
    size = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout)
    assert size < MAX_IMAGE_BYTES, f"the image is {size / 1e6:.0f} MB"


def test_the_image_leaves_out_what_serving_does_not_need(image: str) -> None:
    """No eval extra (pytrec-eval-terrier and its scipy), no Milvus Lite (and its pyarrow: the
    image talks to a Milvus server), no pip: `indexer eval` names the extra."""
    absent = (
        "import importlib.util as u;"
        "print([u.find_spec(m) is None"
        " for m in ('scipy', 'pytrec_eval', 'milvus_lite', 'pyarrow', 'pip')])"
    )
    assert podman("run", "--rm", image, "python", "-c", absent).stdout.strip() == str([True] * 5)
    refused = podman(
        "run", "--rm", image, "python", "-m", "indexer", "eval", "/nowhere", check=False
    )
    assert refused.returncode == 1
    assert "install the eval extra" in refused.stderr


def test_the_image_indexes_your_own_articles(image: str, tmp_path: Path) -> None:
    """As docs/deployment.md shows: the image's indexer, no torch, writing into a mounted
    directory."""
    articles = tmp_path / "articles"
    articles.mkdir()
    (articles / "lighthouse.txt").write_text(
        "Lighthouse keepers\n\nThe last keeper left the island lighthouse in 1998.\n"
    )
    tmp_path.chmod(0o777)  # the container runs as uid 10001
    built = podman(
        "run", "--rm", "-v", f"{tmp_path}:/data", image,
        "python", "-m", "indexer", "build", "--source", "/data/articles", "--out", "/data/index",
        "--no-progress",
    )  # fmt: skip
    assert "indexed 1 document into 1 passage in" in built.stdout
    manifest = read_current_manifest(tmp_path / "index")
    assert manifest.model.name == "sentence-transformers/all-MiniLM-L6-v2"


def test_it_stops_cleanly_on_sigterm(image: str) -> None:
    name, port = f"search-stop-{uuid.uuid4().hex[:8]}", free_port()
    podman("run", "-d", "--name", name, "-e", f"PORT={port}", image)
    try:
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200, "ready")
        started = time.monotonic()
        podman("stop", "--time", "20", name)  # SIGTERM, then SIGKILL only after 20 s
        stopped_in = time.monotonic() - started
        logs = podman("logs", name).stderr + podman("logs", name).stdout
        assert "Application shutdown complete" in logs
        assert stopped_in < 15, f"took {stopped_in:.1f} s: SIGTERM was not handled"
        exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        assert exit_code in ("0", "143")
    finally:
        podman("rm", "-f", name, check=False)


def test_writes_survive_restarts_and_kill_9_in_a_named_volume(image: str) -> None:
    """As docs/deployment.md shows: a named volume at /srv/index starts as the seed index, takes
    writes with the key, and keeps them when the container is stopped, killed or replaced."""
    volume, port = f"search-data-{uuid.uuid4().hex[:8]}", free_port()
    base = f"http://127.0.0.1:{port}"
    key = {"X-API-Key": "container-test-key"}
    article = {
        "title": "Lighthouse keepers",
        "text": "The last keeper left the island lighthouse in 1998.",
        "metadata": {"section": "history"},
    }

    def run(name: str) -> None:
        podman(
            "run", "-d", "--name", name, "-e", f"PORT={port}",
            "-e", "SEARCH_API_KEY=container-test-key", "-v", f"{volume}:/srv/index", image,
        )  # fmt: skip
        wait_for(lambda: httpx.get(f"{base}/ready").status_code == 200, "ready", seconds=120)

    def lighthouse_found() -> bool:
        response = httpx.get(
            f"{base}/search", params={"q": "island lighthouse keeper", "k": 1, "mode": "keyword"}
        )
        return [r["doc_id"] for r in response.json()["results"]] == ["lighthouse.txt"]

    names = [f"search-vol-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
    try:
        run(names[0])
        assert httpx.put(f"{base}/documents/lighthouse.txt", json=article).status_code == 401
        written = httpx.put(
            f"{base}/documents/lighthouse.txt?refresh=wait_for", json=article, headers=key
        )
        assert written.status_code == 201, written.text
        assert lighthouse_found()
        podman("stop", "--time", "20", names[0])
        podman("rm", names[0])
        run(names[1])  # a new container, the same volume
        assert lighthouse_found()
        gone = httpx.delete(f"{base}/documents/{RUSSIA_DOC}", headers=key)
        assert gone.status_code == 204
        podman("kill", "--signal", "KILL", names[1])
        podman("rm", names[1])
        run(names[2])
        assert lighthouse_found()
        assert httpx.get(f"{base}/documents/{RUSSIA_DOC}").status_code == 404
        assert httpx.get(f"{base}/info").json()["seq"] == 2
    finally:
        for name in names:
            podman("rm", "-f", name, check=False)
        podman("volume", "rm", "-f", volume, check=False)


def test_replicas_fill_a_milvus_server_once_and_serve_from_it(
    image: str, milvus_server: MilvusServer
) -> None:
    """As the compose file runs it: two containers started at once with SEARCH_STORE=milvus on
    a Milvus server. One fills the missing collection from the image's seed articles, the other
    waits for it and serves it as it is; both become healthy and answer semantic searches (this
    Milvus, 2.3, has no full-text search) from the same build."""
    collection = f"image_{uuid.uuid4().hex[:8]}"
    names = [f"search-milvus-{i}-{uuid.uuid4().hex[:6]}" for i in range(2)]
    ports = [free_port() for _ in names]
    try:
        for name, port in zip(names, ports, strict=True):
            podman(
                "run", "-d", "--name", name, "--network", "host", "-e", f"PORT={port}",
                "-e", "SEARCH_STORE=milvus", "-e", f"SEARCH_MILVUS_URI={milvus_server.uri}",
                "-e", f"SEARCH_MILVUS_COLLECTION={collection}",
                image,
            )  # fmt: skip
        started = time.monotonic()
        for name in names:
            try:
                wait_for(partial(healthy, name), f"{name} passing its HEALTHCHECK", seconds=180)
            except AssertionError as failure:
                logs = {n: podman("logs", n, check=False) for n in names}
                raise AssertionError(
                    {n: (r.stdout[-2000:], r.stderr[-2000:]) for n, r in logs.items()}
                ) from failure
        seconds = time.monotonic() - started
        logs = [podman("logs", name).stdout for name in names]
        filled = [log for log in logs if "indexed 2 documents into" in log]
        served = [log for log in logs if "holds an index; serving it as it is" in log]
        assert (len(filled), len(served)) == (1, 1), logs
        build_ids = set()
        for port in ports:
            base = f"http://127.0.0.1:{port}"
            info = httpx.get(f"{base}/info").json()
            assert info["store"] == "milvus"
            build_ids.add(info["build_id"])
            response = httpx.get(
                f"{base}/search", params={"q": "Russian military presence", "mode": "semantic"}
            )
            assert response.status_code == 200, response.text
            assert response.json()["results"][0]["doc_id"] == RUSSIA_DOC
        assert len(build_ids) == 1
        (ARTIFACTS / "container-milvus-healthy-seconds.txt").write_text(f"{seconds:.1f}\n")
    finally:
        for name in names:
            podman("rm", "-f", name, check=False)
        MilvusStore.drop(MilvusTarget(uri=milvus_server.uri, collection=collection))


def test_the_image_needs_a_milvus_server_uri_for_the_milvus_store(image: str) -> None:
    """It has no Milvus Lite: SEARCH_STORE=milvus with a file (the default URI) is refused."""
    refused = podman("run", "--rm", "-e", "SEARCH_STORE=milvus", image, check=False)
    assert refused.returncode == 2
    ours = [line for line in refused.stderr.splitlines() if line and not line.startswith("time=")]
    assert ours == [
        "error: SEARCH_STORE=milvus: set SEARCH_MILVUS_URI to a Milvus server "
        "(http://host:19530); the image has no Milvus Lite for a local file"
    ]

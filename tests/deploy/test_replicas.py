"""Replicas behind nginx (deploy/nginx-replicas.conf): one Milvus server, two services on it.

Real processes throughout, as deploy/compose.yaml runs them: the collection is filled by
``python -m indexer build --store milvus --if-stale`` (the compose file's init job), two
``python -m app`` with the real model serve it, and nginx balances them under /search-api/.
A document written through one replica is found through the other; then replica A is killed
with SIGKILL while eight clients search through nginx, and no search may fail.

Replica A is frozen (SIGSTOP) for half a second before it is killed, so that searches are sure
to be in flight on it when it dies (without, a kill finds one in flight only by chance): nginx
must pass those on to B, POST searches included. The load goes on for longer than
fail_timeout after the kill, so nginx also tries A again once, finds it refusing, and passes
that search on too.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from harness.milvus import MilvusServer
from harness.service import free_port, server
from indexer.stores.milvus.client import MilvusTarget
from indexer.stores.milvus.store import MilvusStore
from tests.utils.deploy import require
from tests.utils.paths import ARTIFACTS
from tests.utils.processes import indexer_cli, running_nginx
from tests.utils.seeds import RUSSIA_DOC

PREFIX = "/search-api"
KEY = "replicas-write-key"
# Eight clients, each from a loopback address of its own (nginx allows each address 20
# requests/s), at 10 searches a second each: people at a search page, not one client hammering
# the proxy. Together 80 searches a second, spread evenly.
CLIENTS = 8
CLIENT_RATE = 10.0
FREEZE_AFTER = 4.5
KILL_AFTER = 5.0
# deploy/nginx-replicas.conf's fail_timeout (10 s) after the kill, and some.
LOAD_SECONDS = KILL_AFTER + 13.0
QUERIES = [
    "Russian military presence",
    "Russian troops in Caracas",
    "S-300 anti-aircraft batteries",
    "sanctions and medicine",
    "opposition calls for new elections",
    "talks between the government and the opposition",
    "Maduro government",
    "an undesired foreign presence",
    "humanitarian aid",
    "Pompeo visit",
    "oil exports",
    "maintenance of military equipment",
]
HARVEST = {
    "title": "Norwegian apple harvest",
    "text": "Orchards along the Hardanger fjord reported a record apple harvest this autumn.",
    "metadata": {"section": "business"},
}
ARTIFACT = "replicas-failover.txt"


@dataclass
class Replica:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Topology:
    env: dict[str, str]
    replicas: list[Replica]
    proxy: str
    nginx_log: Path
    start: Callable[[str, int], subprocess.Popen[bytes]]
    """Starts a replica of this name on this port (until the module's end) and waits for it."""
    # What the tests measured, for the artifact (written at the end of the module).
    report: dict[str, object] = field(default_factory=dict)

    def restart(self, replica: Replica) -> None:
        """Bring a replica a test killed back, on its port: nginx finds it again once its
        fail_timeout is over, and the next test starts from the same topology."""
        replica.process = self.start(replica.name, replica.port)


def init_job(env: dict[str, str]) -> str:
    """The compose file's init job: fill the collection from the seeds unless it exists."""
    result = indexer_cli(
        "build", "--source", "seeds", "--store", "milvus", "--if-stale", "--no-progress", env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def topology(
    milvus_server: MilvusServer, onnx_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Topology]:
    """Milvus, the collection filled by the init job, replicas A and B, nginx before them."""
    require("nginx")
    workdir = tmp_path_factory.mktemp("replicas")
    target = MilvusTarget(uri=milvus_server.uri, collection=f"replicas_{uuid.uuid4().hex[:12]}")
    env = {
        "SEARCH_STORE": "milvus",
        "SEARCH_MILVUS_URI": target.uri,
        "SEARCH_MILVUS_COLLECTION": target.collection,
        "SEARCH_ONNX_DIR": str(onnx_dir),
    }
    started = time.monotonic()
    built = init_job(env)
    assert "indexed 2 documents" in built, built
    service_env = {**env, "SEARCH_ROOT_PATH": PREFIX, "SEARCH_API_KEY": KEY}
    topology = None
    try:
        with ExitStack() as stack:

            def start(name: str, port: int) -> subprocess.Popen[bytes]:
                # SEARCH_INDEX_DIR (a FAISS index) is not read: SEARCH_STORE=milvus.
                log = workdir / f"{name}-{uuid.uuid4().hex[:6]}.log"
                process, _ = stack.enter_context(
                    server(workdir / "no-index", port, service_env, log)
                )
                return process

            replicas = [
                Replica(name, port, start(name, port))
                for name, port in (("A", free_port()), ("B", free_port()))
            ]
            nginx_dir = workdir / "nginx"
            proxy = stack.enter_context(
                running_nginx(nginx_dir, *(r.port for r in replicas), config="nginx-replicas.conf")
            )
            topology = Topology(env, replicas, proxy, nginx_dir / "access.log", start)
            topology.report["seconds to start (init job, 2 replicas, nginx)"] = round(
                time.monotonic() - started, 1
            )
            yield topology
    finally:
        MilvusStore.drop(target)
        if topology is not None and topology.report:
            write_report(topology.report)


def write_report(report: dict[str, object]) -> None:
    lines = [f"{name}: {value}" for name, value in report.items()]
    print("\n" + "\n".join(lines))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ARTIFACT).write_text("\n".join(lines) + "\n")


def search(base: str, query: str) -> list[str]:
    answer = httpx.get(
        f"{base}/search", params={"q": query, "mode": "semantic", "k": 3}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return [result["doc_id"] for result in answer.json()["results"]]


def test_a_document_written_through_replica_a_is_found_through_replica_b(
    topology: Topology,
) -> None:
    a, b = topology.replicas
    assert RUSSIA_DOC in search(b.url, "Russian military presence")
    url = f"{a.url}/documents/apples.txt"
    written = httpx.put(url, json=HARVEST, headers={"Authorization": f"Bearer {KEY}"})
    assert written.status_code == 201, written.text
    acknowledged = time.monotonic()
    while "apples.txt" not in search(b.url, "apple harvest in a fjord"):
        assert time.monotonic() - acknowledged < 10, "replica B never found A's write"
        time.sleep(0.05)
    seconds = time.monotonic() - acknowledged
    # A publishes its own write at its own refresh too, which may come after B's.
    while "apples.txt" not in search(a.url, "apple harvest in a fjord"):
        assert time.monotonic() - acknowledged < 10, "replica A never published its write"
        time.sleep(0.05)
    stored = httpx.get(f"{b.url}/documents/apples.txt")
    assert stored.status_code == 200, stored.text
    assert stored.json()["text"] == HARVEST["text"]
    # And through nginx, whichever replica answers.
    assert search(f"{topology.proxy}{PREFIX}", "apple harvest in a fjord")[0] == "apples.txt"
    topology.report["write through A found through B"] = (
        f"yes, {seconds:.2f} s after A acknowledged it (B's refresh interval: 1 s)"
    )

    # `docker compose up` again runs the init job again: it must leave the written corpus be.
    again = init_job(topology.env)
    assert "holds an index; serving it as it is" in again, again
    assert "apples.txt" in search(b.url, "apple harvest in a fjord")

    # Each replica knows its own recent writes from memory: the other's must still count.
    headers = {"Authorization": f"Bearer {KEY}"}
    replaced = httpx.put(f"{b.url}/documents/apples.txt", json=HARVEST, headers=headers)
    assert replaced.status_code == 200, replaced.text  # replaced, not created
    deleted = httpx.delete(url, headers=headers)  # through A, right after B's replacement
    assert deleted.status_code == 204, deleted.text
    for replica in (a, b):
        assert httpx.get(f"{replica.url}/documents/apples.txt").status_code == 404


@dataclass
class Outcome:
    client: int
    method: str
    status: int | None  # None: no HTTP answer at all
    error: str
    started: float
    seconds: float


async def client_loop(number: int, proxy: str, started: float) -> list[Outcome]:
    """One client, from its own loopback address, searching at CLIENT_RATE until LOAD_SECONDS."""
    transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{2 + number}")
    outcomes = []
    offset = number / (CLIENTS * CLIENT_RATE)  # the clients take turns, not all at once
    async with httpx.AsyncClient(transport=transport, timeout=30) as client:
        for sent in range(int(CLIENT_RATE * LOAD_SECONDS) + 1):
            due = started + offset + sent / CLIENT_RATE
            if due - started >= LOAD_SECONDS:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            query = QUERIES[(number + sent) % len(QUERIES)]
            # GET and POST searches in turn: nginx passes a failed POST on only because
            # deploy/nginx-replicas.conf says searches may be (non_idempotent).
            method = "GET" if sent % 2 == 0 else "POST"
            began = time.monotonic()
            status, error = None, ""
            try:
                if method == "GET":
                    answer = await client.get(
                        f"{proxy}{PREFIX}/search", params={"q": query, "mode": "semantic"}
                    )
                else:
                    answer = await client.post(
                        f"{proxy}{PREFIX}/search", json={"query": query, "mode": "semantic"}
                    )
                status = answer.status_code
                if status == 200 and not answer.json()["results"]:
                    error = "no results"
                elif status != 200:
                    error = answer.text[:200]
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            outcomes.append(
                Outcome(number, method, status, error, began - started, time.monotonic() - began)
            )
    return outcomes


async def load_with_a_kill(proxy: str, victim: Replica) -> tuple[list[Outcome], float]:
    started = time.monotonic()

    async def kill() -> float:
        await asyncio.sleep(FREEZE_AFTER)
        os.kill(victim.process.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(KILL_AFTER - FREEZE_AFTER)
        finally:  # never leave it stopped, where SIGTERM could not end it
            os.kill(victim.process.pid, signal.SIGKILL)
        return time.monotonic() - started

    clients = [client_loop(number, proxy, started) for number in range(CLIENTS)]
    killed_at, *per_client = await asyncio.gather(kill(), *clients)
    return [outcome for outcomes in per_client for outcome in outcomes], killed_at


LOG_LINE = re.compile(
    r'"(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d+) .* '
    r'upstream="(?P<upstream>[^"]*)" upstream_status="(?P<upstream_status>[^"]*)"'
)
# nginx's error log: why it gave up on a replica for a request.
ERROR_LINE = re.compile(
    r"\[error\] [^*]*\*\d+ (?P<reason>.+?) while .* request: \"(?P<method>[A-Z]+) "
)


def counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {count}" for key, count in sorted(counter.items())) or "none"


REINDEX_AFTER = 3.0
# Long enough for the reindex (about 10 s under this load) and both replicas' switches after it:
# B's takes a refresh interval and loading the new version's collections (seconds on 2.3).
REINDEX_LOAD_SECONDS = 30.0
SETTLED_AFTER_SWITCH = 8.0


async def searches_during(proxy: str, seconds: float) -> list[tuple[float, int | None, str]]:
    """Searches through nginx for ``seconds`` (CLIENTS clients at CLIENT_RATE): when each was
    sent, its status and the build that answered it."""
    started = time.monotonic()
    results: list[tuple[float, int | None, str]] = []

    async def one_client(number: int) -> None:
        transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{2 + number}")
        async with httpx.AsyncClient(transport=transport, timeout=30) as client:
            for sent in range(int(CLIENT_RATE * seconds)):
                due = started + number / (CLIENTS * CLIENT_RATE) + sent / CLIENT_RATE
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                query = QUERIES[(number + sent) % len(QUERIES)]
                try:
                    answer = await client.get(
                        f"{proxy}{PREFIX}/search", params={"q": query, "mode": "semantic"}
                    )
                    build = answer.json().get("index_build", "") if answer.is_success else ""
                    results.append((due - started, answer.status_code, build))
                except httpx.HTTPError as exc:
                    results.append((due - started, None, f"{type(exc).__name__}: {exc}"))

    await asyncio.gather(*(one_client(n) for n in range(CLIENTS)))
    return results


def test_a_reindex_through_one_replica_under_load_fails_no_search_and_moves_both(
    topology: Topology,
) -> None:
    """POST /admin/reindex on replica A (new passage size, the real model) while eight clients
    search through nginx: no search fails, and both replicas answer from the new build once
    each has read the switch at its refresh (1 s)."""
    a, b = topology.replicas
    headers = {"Authorization": f"Bearer {KEY}"}
    old_build = httpx.get(f"{b.url}/info").json()["build_id"]

    async def run() -> tuple[list[tuple[float, int | None, str]], float]:
        async def reindex() -> float:
            await asyncio.sleep(REINDEX_AFTER)
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await client.post(
                    f"{a.url}/admin/reindex", json={"chunk_size": 64}, headers=headers
                )
                assert answer.status_code == 202, answer.text
                for _ in range(600):  # polled: the status is another process's
                    status = (await client.get(f"{a.url}/admin/reindex", headers=headers)).json()
                    if status["state"] != "running":
                        break
                    await asyncio.sleep(0.1)
            assert status["state"] == "done", status
            return time.monotonic()

        switched, searches = await asyncio.gather(
            reindex(), searches_during(topology.proxy, REINDEX_LOAD_SECONDS)
        )
        return searches, switched

    started = time.monotonic()
    searches, switched_at = asyncio.run(run())
    switched = switched_at - started
    new_build = httpx.get(f"{a.url}/info").json()["build_id"]
    assert new_build != old_build
    failed = [s for s in searches if s[1] != 200]
    builds = Counter(build for _, status, build in searches if status == 200)
    # Once both replicas have switched, every answer is the new build's.
    settled = [(t, build) for t, status, build in searches if t > switched + SETTLED_AFTER_SWITCH]
    late_old = [t for t, build in settled if build == old_build]
    topology.report.update(
        {
            "reindex under load": f"POST /admin/reindex (chunk_size 64) on A at "
            f"{REINDEX_AFTER:g} s, switched at {switched:.1f} s, while {CLIENTS} clients x "
            f"{CLIENT_RATE:g} semantic searches/s went through nginx for "
            f"{REINDEX_LOAD_SECONDS:g} s",
            "searches during the reindex": f"{len(searches)} total, {len(failed)} failed; "
            f"answered by the old build {builds[old_build]}, by the new {builds[new_build]}",
        }
    )
    assert not failed, failed[:10]
    assert set(builds) == {old_build, new_build}
    assert settled, f"the reindex switched at {switched:.1f} s, too late for the load"
    assert not late_old, late_old[:10]
    info = httpx.get(f"{b.url}/info").json()
    assert info["build_id"] == new_build
    assert info["chunking"]["max_tokens"] == 64
    assert RUSSIA_DOC in search(b.url, "Russian military presence")


def test_killing_a_replica_under_load_fails_no_search(topology: Topology) -> None:
    """Replica A is killed; it is started again at the end, for whichever test comes next."""
    a, b = topology.replicas
    names = {f"127.0.0.1:{replica.port}": replica.name for replica in topology.replicas}
    errors_log = topology.nginx_log.with_name("error.log")
    logged_before = len(topology.nginx_log.read_text().splitlines())
    errors_before = len(errors_log.read_text().splitlines())

    try:
        outcomes, killed_at = asyncio.run(load_with_a_kill(topology.proxy, a))
        a.process.wait(10)
        assert a.process.returncode == -signal.SIGKILL
    finally:
        if a.process.poll() is not None:
            topology.restart(a)

    failed = [outcome for outcome in outcomes if outcome.error]
    after_kill = [outcome for outcome in outcomes if outcome.started >= killed_at]
    # What nginx did: who answered each search, and which it passed on to the other replica.
    answered_by: Counter[str] = Counter()
    passed_on: Counter[str] = Counter()
    for line in topology.nginx_log.read_text().splitlines()[logged_before:]:
        entry = LOG_LINE.search(line)
        assert entry is not None, line
        assert entry["path"].startswith(f"{PREFIX}/search"), line
        tried = [names.get(address, address) for address in entry["upstream"].split(", ")]
        answered_by[tried[-1]] += 1
        if len(tried) > 1:
            passed_on[entry["method"]] += 1
    reasons: Counter[str] = Counter()
    for line in errors_log.read_text().splitlines()[errors_before:]:
        if (error := ERROR_LINE.search(line)) is not None:
            reasons[f"{error['reason']} ({error['method']})"] += 1
    slowest = max(outcome.seconds for outcome in outcomes)
    topology.report.update(
        {
            "load": f"{CLIENTS} clients x {CLIENT_RATE:g} searches/s for {LOAD_SECONDS:g} s "
            "through nginx, GET and POST /search in turn, mode=semantic",
            "replica A": f"frozen (SIGSTOP) at {FREEZE_AFTER:g} s, killed (SIGKILL) at "
            f"{killed_at:.1f} s",
            "searches": f"{len(outcomes)} total, {len(failed)} failed "
            f"({len(after_kill)} sent after the kill)",
            "by method": counts(Counter(outcome.method for outcome in outcomes)),
            "answered by replica": counts(answered_by),
            "passed on to the other replica by nginx": counts(passed_on),
            "why nginx passed them on (its error log)": counts(reasons),
            "slowest search": f"{slowest * 1000:.0f} ms",
        }
    )
    assert not failed, [f"{o.method} {o.status} {o.error}" for o in failed[:10]]
    assert len(outcomes) >= 0.9 * CLIENTS * CLIENT_RATE * LOAD_SECONDS
    assert sum(answered_by.values()) == len(outcomes)
    # Both replicas served until A died, B everything after.
    assert answered_by["A"] > 0
    assert answered_by["B"] > answered_by["A"]
    # Searches in flight on A when it died were passed on, POSTs too (non_idempotent) ...
    assert passed_on["GET"] > 0
    assert passed_on["POST"] > 0
    # ... and fail_timeout after the kill, nginx tried A again: refused, and passed on.
    assert any("Connection refused" in reason for reason in reasons), reasons
    # B still answers directly too.
    assert RUSSIA_DOC in search(b.url, "Russian military presence")

"""Helpers for the kill -9 tests: writes that can be replayed from a log line, and the state
they should leave behind.

A writer prints ``begin <op>`` before each write and ``ack <op>`` once it returned. After a
SIGKILL, every acknowledged write must be there; the one write in flight may or may not be.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.utils.paths import REPO

WORDS = [
    "troops",
    "oil",
    "election",
    "court",
    "harvest",
    "storm",
    "market",
    "vaccine",
    "border",
    "minister",
    "protest",
    "bank",
    "strike",
    "rain",
    "drought",
    "refugee",
    "summit",
    "treaty",
    "port",
    "factory",
    "river",
    "bridge",
    "museum",
    "school",
    "hospital",
    "budget",
    "tax",
    "tariff",
    "pipeline",
    "satellite",
]
SECTIONS = ["world", "business", "science", "culture"]


def content(doc_id: str, version: int) -> dict[str, object]:
    """The title, text and metadata of one version of one document (deterministic)."""
    seed = int(hashlib.sha256(f"{doc_id}:{version}".encode()).hexdigest()[:12], 16)
    rng = random.Random(seed)
    paragraphs = [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40))).capitalize() + "."
        for _ in range(rng.randint(1, 4))
    ]
    return {
        "title": f"{doc_id} version {version}",
        "text": "\n\n".join(paragraphs),
        "metadata": {"section": rng.choice(SECTIONS), "year": 2000 + rng.randint(0, 24)},
    }


@dataclass(frozen=True, slots=True)
class Op:
    kind: str  # "put" or "delete"
    doc_id: str
    version: int = 0

    def line(self) -> str:
        return json.dumps([self.kind, self.doc_id, self.version])

    @classmethod
    def parse(cls, text: str) -> Op:
        kind, doc_id, version = json.loads(text)
        return cls(kind, doc_id, version)


def next_op(rng: random.Random, state: dict[str, int | None], pool: int = 40) -> Op:
    """A random write: mostly puts (new documents and replacements), some deletes."""
    doc_id = f"doc-{rng.randrange(pool):03d}"
    if state.get(doc_id) is not None and rng.random() < 0.3:
        return Op("delete", doc_id)
    return Op("put", doc_id, (state.get(doc_id) or 0) + 1 + rng.randrange(3))


@dataclass
class Expected:
    """What the store must hold: doc id -> version (None: deleted), from acknowledged writes."""

    versions: dict[str, int | None] = field(default_factory=dict)
    acknowledged: int = 0
    in_flight_applied: int = 0
    """Writes in flight at a kill that turned out to be durable (the others were not)."""
    in_flight_lost: int = 0

    def apply(self, op: Op) -> None:
        self.versions[op.doc_id] = op.version if op.kind == "put" else None

    def read_log(self, lines: list[str]) -> Op | None:
        """Apply every acknowledged write in a writer's output; returns the write that was in
        flight when it died (begun, not acknowledged), if any."""
        in_flight: Op | None = None
        for line in lines:
            tag, _, payload = line.partition(" ")
            if tag == "begin":
                in_flight = Op.parse(payload)
            elif tag == "ack":
                op = Op.parse(payload)
                assert op == in_flight, (op, in_flight)
                self.apply(op)
                self.acknowledged += 1
                in_flight = None
        return in_flight

    def check(self, found: dict[str, int | None], in_flight: Op | None) -> None:
        """``found`` (doc id -> version held, None for absent) must be what was acknowledged;
        the write in flight may have happened or not. Adopts the outcome."""
        before = dict(self.versions)
        for doc_id in set(before) | set(found):
            want, got = before.get(doc_id), found.get(doc_id)
            if in_flight is not None and doc_id == in_flight.doc_id and got != want:
                after = in_flight.version if in_flight.kind == "put" else None
                assert got == after, f"{doc_id}: {got}, expected {want} or {after}"
                self.versions[doc_id] = got
                continue
            assert got == want, f"{doc_id}: holds version {got}, acknowledged {want}"
        if in_flight is not None:
            if self.versions != before:
                self.in_flight_applied += 1
            else:
                self.in_flight_lost += 1

    def summary(self, rounds: int, **extra: object) -> str:
        live = sum(v is not None for v in self.versions.values())
        lines = [
            f"rounds (kill -9): {rounds}",
            f"acknowledged writes: {self.acknowledged}, all present after restart",
            f"writes in flight at a kill: {self.in_flight_applied} found applied, "
            f"{self.in_flight_lost} not (never acknowledged)",
            f"documents at the end: {live} live, "
            f"{sum(v is None for v in self.versions.values())} deleted and absent",
            *(f"{key}: {value}" for key, value in extra.items()),
        ]
        return "\n".join(lines) + "\n"


def version_of(title: str) -> int:
    return int(title.rsplit(" ", 1)[1])


Ranking = list[tuple[str, int, float]]


def assert_same_ranking(ours: Ranking, theirs: Ranking) -> None:
    """Identical (doc id, chunk, score) lists, except which of several passages with exactly
    the last score made the cut: an index may keep any of them at the k-th place."""
    assert [score for *_, score in ours] == [score for *_, score in theirs]
    if not ours:
        return
    last = ours[-1][2]
    assert [r for r in ours if r[2] != last] == [r for r in theirs if r[2] != last]


def kill_writer(script: str, args: list[str], log: Path, acknowledged: int) -> list[str]:
    """Run a writer (``python -c script *args``, printing ``begin``/``ack`` lines to ``log``),
    kill it with SIGKILL once it has acknowledged ``acknowledged`` writes (while the next is in
    flight), and return its complete output lines, checked free of tracebacks."""
    with log.open("w") as sink:
        writer = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 120
    try:
        while log.read_text().count("\nack ") < acknowledged:  # each "ack" follows a "begin"
            assert writer.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"{acknowledged} writes were not acknowledged"
            time.sleep(0.005)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    text = log.read_text()
    lines = text.splitlines()
    complete = lines if text.endswith("\n") else lines[:-1]
    assert not any("Traceback" in line for line in complete), text
    return complete

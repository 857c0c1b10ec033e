"""The Ray engine: the build's passages embedded by an actor pool on a Ray cluster.

Each actor loads the model once and embeds block after block (Ray Data's ``map_batches``
with a callable class); the blocks stream back to the build, which commits each to the
embedding cache as it arrives, so a cluster that loses the driver or a node loses at most the
blocks in flight. Chunking runs before, as Ray tasks over batches of documents (one core
chunks 1 500-2 600 passages a second: in the driver alone it would hold back a cluster
of GPUs); the driver reads the corpus, looks its passages up in the cache and writes the store.

``address`` joins a running cluster (``ray://`` or ``host:port``; inside ``ray job submit``
Ray's own ``RAY_ADDRESS`` does); without one a local Ray starts with the build and stops with
it. Ray is the ``ray`` extra: nothing else imports this module, the service never does.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.backends import Backend, load_embedder
from indexer.build_progress import BuildMeter
from indexer.embedding import DEFAULT_BATCH_SIZE, ModelLoadError, Vectors
from indexer.engines.base import Positions
from indexer.engines.local import CHUNK_DOCUMENTS
from indexer.ingest import Chunked, Preparer, chunk_documents
from indexer.types import Document

RAY_EXTRA_INSTALL = "pip install 'semantic-search[ray]' (or make install-ray)"
# Texts per block: what an actor embeds between two hand-overs, and what a lost actor or a
# killed build re-embeds at most per actor (a few seconds of work on one core).
BLOCK_TEXTS = 256

log = logging.getLogger(__name__)


class RayUnavailableError(ModelLoadError):
    """Ray is not installed, or the cluster cannot be reached."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What an actor needs to load the model itself (a loaded model does not travel)."""

    name: str
    backend: Backend
    onnx_dir: Path
    threads: int
    device: str = "cpu"


class _EmbedActor:
    """One actor of the pool: the model, loaded once, embedding the blocks it is given."""

    def __init__(self, spec: ModelSpec, batch_size: int) -> None:
        self.embedder = load_embedder(
            spec.name, spec.backend, spec.onnx_dir, threads=spec.threads, device=spec.device
        )
        self.batch_size = batch_size

    def __call__(self, block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(t) for t in block["text"]]
        vectors = self.embedder.encode(texts, batch_size=self.batch_size)
        return {"position": block["position"], "vector": vectors}


def _quiet(ray: Any) -> Any:
    """Ray Data without its progress bars and its progress log lines: the build's own
    progress counts the passages."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    return ray


class RayEngine:
    name = "ray"

    def __init__(
        self,
        spec: ModelSpec,
        *,
        address: str | None = None,
        actors: int = 1,
        num_gpus: float = 0.0,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if actors < 1:
            raise ValueError("the Ray engine needs at least one actor")
        self.spec = spec
        self.address = address or None
        self.actors = actors
        self.num_gpus = num_gpus
        self.batch_size = batch_size
        self._connected = False  # by this engine: a connection someone else made stays theirs
        self._temp: tempfile.TemporaryDirectory[str] | None = None

    def describe(self) -> str:
        where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
        gpus = f", {self.num_gpus:g} GPU each" if self.num_gpus else ""
        return f"{self.actors} actor{'s' if self.actors != 1 else ''} on {where}{gpus}"

    def chunk(
        self, preparer: Preparer, documents: Sequence[Document], meter: BuildMeter
    ) -> Chunked:
        """Chunked by Ray tasks, a batch of documents each, with the preparer's own chunker
        (its tokenizer travels with it): the driver only reads and assembles."""
        ray = self._connect()
        chunker = ray.put(preparer.chunker)
        task = ray.remote(num_cpus=1)(chunk_documents)
        batches = [
            documents[start : start + CHUNK_DOCUMENTS]
            for start in range(0, len(documents), CHUNK_DOCUMENTS)
        ]
        pending = {
            task.remote(chunker, preparer.title_prefix, batch): number
            for number, batch in enumerate(batches)
        }
        parts: list[Chunked | None] = [None] * len(batches)
        meter.phase("chunking", total=len(documents), unit="document")
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            number = pending.pop(ready[0])
            parts[number] = ray.get(ready[0])
            meter.advance(len(batches[number]))
        meter.close()
        return Chunked.joined([part for part in parts if part is not None])

    def embed(self, texts: Sequence[str]) -> Iterator[tuple[Positions, Vectors]]:
        if not texts:
            return
        ray = self._connect()
        import pyarrow as pa

        # One Arrow table per block: Ray Data hands each to an actor as it is.
        tables = [
            pa.table(
                {
                    "position": np.arange(start, min(start + BLOCK_TEXTS, len(texts))),
                    "text": list(texts[start : start + BLOCK_TEXTS]),
                }
            )
            for start in range(0, len(texts), BLOCK_TEXTS)
        ]
        # A pool with a minimum of one, not a fixed size: actors holding every CPU starve the
        # stages upstream and the pipeline hangs without a word (ray-project/ray#44687).
        dataset = ray.data.from_arrow(tables).map_batches(
            _EmbedActor,
            fn_constructor_kwargs={"spec": self.spec, "batch_size": self.batch_size},
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=self.actors),
            batch_size=BLOCK_TEXTS,
            batch_format="numpy",
            num_cpus=self.spec.threads if not self.num_gpus else 1,
            num_gpus=self.num_gpus or None,
        )
        for block in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            positions = np.asarray(block["position"], dtype=np.int64)
            vectors = np.ascontiguousarray(np.stack(list(block["vector"])), dtype=np.float32)
            yield positions, vectors

    def _connect(self) -> Any:
        try:
            import ray
        except ImportError as error:
            raise RayUnavailableError(
                f"the Ray engine needs Ray ({error}): {RAY_EXTRA_INSTALL}"
            ) from None
        if ray.is_initialized():  # the caller's connection (a benchmark, a notebook)
            return _quiet(ray)
        try:
            if self.address is not None:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
            elif os.environ.get("RAY_ADDRESS"):  # inside `ray job submit`
                ray.init(log_to_driver=False, logging_level=logging.WARNING)
            else:
                # Ray quietly turns token auth on for a cluster ray.init starts, and every later
                # `ray start` on the machine then needs its token: a private one needs none.
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")
                # A short temporary directory: Ray's socket paths must fit in 107 characters.
                self._temp = tempfile.TemporaryDirectory(
                    prefix="ray-", dir="/tmp", ignore_cleanup_errors=True
                )
                ray.init(
                    num_cpus=max(self.actors * self.spec.threads, os.cpu_count() or 1),
                    num_gpus=None,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    _temp_dir=self._temp.name,
                )
            self._connected = True
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise RayUnavailableError(f"could not reach {self.describe()}: {error}") from None
        return _quiet(ray)

    def close(self) -> None:
        """Disconnect, if this engine connected; a local Ray it started stops."""
        if self._connected:
            import ray

            ray.shutdown()
            self._connected = False
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None

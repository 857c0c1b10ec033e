"""A build's embedding phase: every passage's vector, from the embedding cache where it has
one, from the engine where not, each finished batch committed to the cache with the build's
progress before the next is asked for (``indexer.embedding_cache``).

A build killed at any point and run again (``--resume``) finds what it had committed and
embeds the rest; the vectors it ends with are those an uninterrupted build gets, since a
cached vector is the one the same model made of the same text.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from indexer.build_progress import BuildMeter
from indexer.embedding import Vectors
from indexer.embedding_cache import EmbeddingCache, UnfinishedBuild
from indexer.engines.base import Engine
from indexer.engines.local import LocalEngine
from indexer.ingest import Preparer
from indexer.types import Document, IndexedDocument


class ResumeError(Exception):
    """``--resume`` found nothing to resume, or an unfinished build of something else."""


@dataclass(frozen=True, slots=True)
class EmbedStats:
    passages: int
    cached: int
    """Passages whose vector the cache held when the build started (resumed ones included)."""
    embedded: int
    seconds: float
    resumed: UnfinishedBuild | None = None
    """The unfinished build this one continued, if it did."""
    repeated: int = 0
    """Passages with the text of an earlier one that was not in the cache either: they take
    its vector, embedded once (syndicated copies of an article, boilerplate)."""

    @property
    def hit_rate(self) -> float:
        return self.cached / self.passages if self.passages else 0.0

    def summary(self) -> str:
        """The build's last line's part about embedding."""
        rate = f"{self.embedded / self.seconds:.1f}/s" if self.seconds > 0 and self.embedded else ""
        embedded = f"{self.embedded} embedded" + (f" ({rate})" if rate else "")
        repeated = f", {self.repeated} repeating another's text" if self.repeated else ""
        return f"{embedded}, {self.cached} from the cache ({self.hit_rate:.1%} hit rate){repeated}"


def check_resume(
    cache: EmbeddingCache, target: str, fingerprint: str, *, resume: bool
) -> UnfinishedBuild | None:
    """The unfinished build of ``target`` that ``--resume`` continues: ResumeError if there is
    none, or it was of another corpus or other settings. Without ``--resume``, None."""
    unfinished = cache.unfinished(target)
    if not resume:
        return None
    if unfinished is None:
        raise ResumeError(
            f"no unfinished build of {target} is recorded in {cache.path}: nothing to resume "
            "(run the build without --resume)"
        )
    if unfinished.fingerprint != fingerprint:
        raise ResumeError(
            f"the unfinished build of {target} recorded in {cache.path} was of another corpus "
            "or with other settings; run the build again with what it was started with, or "
            "without --resume to start afresh (the cached vectors are used either way)"
        )
    return unfinished


def embed_passages(
    texts: Sequence[str],
    dimension: int,
    engine: Engine,
    cache: EmbeddingCache | None,
    *,
    target: str | None = None,
    fingerprint: str = "",
    resume: bool = False,
    meter: BuildMeter | None = None,
) -> tuple[Vectors, EmbedStats]:
    """Every text's vector (one row each), and how many came from where. ``target`` names
    the store being built in the cache's journal (``--resume`` looks it up); None: a
    reindex, which keeps no journal (it starts again from the live store)."""
    started = time.perf_counter()
    meter = meter or BuildMeter("off")
    vectors = np.zeros((len(texts), dimension), dtype=np.float32)
    keys: list[bytes] = []
    found: dict[bytes, np.ndarray] = {}
    resumed = None
    if cache is not None:
        if target is not None:
            resumed = check_resume(cache, target, fingerprint, resume=resume)
        keys = [cache.key(text) for text in texts]
        found = cache.get(list(dict.fromkeys(keys)), dimension)
    # Each text is embedded once: a repeat is (its position, the first's), copied at the end.
    missing: list[int] = []
    repeats: list[tuple[int, int]] = []
    first: dict[Hashable, int] = {}
    identities: Sequence[Hashable] = keys or texts  # without a cache, the text itself
    for position, key in enumerate(identities):
        vector = found.get(keys[position]) if keys else None
        if vector is not None:
            vectors[position] = vector
        elif key in first:
            repeats.append((position, first[key]))
        else:
            first[key] = position
            missing.append(position)
    if cache is not None and target is not None:
        cache.start_build(target, fingerprint, len(missing))
    cached = len(texts) - len(missing) - len(repeats)
    meter.phase("embedding", total=len(texts), done=cached)
    done = 0
    arrived = np.zeros(len(missing), dtype=bool)
    where = np.asarray(missing, dtype=np.int64)  # once: a build has millions of batches' worth
    for positions, batch in engine.embed([texts[i] for i in missing]):
        chosen = where[positions]
        vectors[chosen] = batch
        arrived[positions] = True
        done += len(positions)
        if cache is not None:
            chosen_keys = [keys[i] for i in chosen.tolist()]
            if target is None:
                cache.put(chosen_keys, batch)
            else:
                cache.put_progress(target, chosen_keys, batch, done)
        meter.advance(len(positions))
    meter.advance(len(repeats))  # done once their originals are
    meter.close()
    if not arrived.all():
        raise RuntimeError(
            f"the {engine.name} engine returned {int(arrived.sum())} of {len(missing)} vectors"
        )
    if repeats:
        to, of = np.asarray(repeats, dtype=np.int64).T
        vectors[to] = vectors[of]
    seconds = time.perf_counter() - started
    return vectors, EmbedStats(len(texts), cached, done, seconds, resumed, len(repeats))


def prepare_cached(
    preparer: Preparer, documents: Sequence[Document], cache: EmbeddingCache | None
) -> list[IndexedDocument]:
    """``preparer.prepare(documents)``, embedding only the passages ``cache`` has no vector
    for (and keeping theirs there): what a reindex does."""
    if cache is None:
        return preparer.prepare(documents)
    chunked = preparer.chunk(documents)
    engine = LocalEngine(preparer.embedder)
    vectors, _ = embed_passages(chunked.texts, preparer.embedder.dimension, engine, cache)
    return chunked.with_vectors(vectors)

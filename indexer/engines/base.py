"""What a build needs of an engine: its documents chunked, and the vectors of many texts, in
batches as they finish."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from indexer.embedding import Vectors

if TYPE_CHECKING:
    from indexer.build_progress import BuildMeter
    from indexer.ingest import Chunked, Preparer
    from indexer.types import Document

Positions = npt.NDArray[np.int64]


class Engine(Protocol):
    name: str
    """As ``--engine`` names it."""

    def chunk(
        self, preparer: Preparer, documents: Sequence[Document], meter: BuildMeter
    ) -> Chunked:
        """``preparer.chunk(documents)``: the same passages and texts, wherever it runs."""
        ...

    def embed(self, texts: Sequence[str]) -> Iterator[tuple[Positions, Vectors]]:
        """Every text's unit vector, batch by batch as they finish, in any order: the
        positions (into ``texts``) of a batch and their vectors. The build commits each batch
        to the embedding cache before it asks for the next, so what a batch holds is what a
        killed build loses."""
        ...

    def describe(self) -> str:
        """Where it embeds, for the build's messages: "2 actors on a local Ray"."""
        ...

    def close(self) -> None:
        """Release what ``embed`` started (a local Ray cluster); safe to call twice."""
        ...

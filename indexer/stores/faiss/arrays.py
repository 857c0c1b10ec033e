"""Append-only numpy arrays that readers can hold views of while a writer appends."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

T = TypeVar("T", bound=np.generic)


class AppendOnlyArray(Generic[T]):
    """Rows appended at the end, never changed; ``head(n)`` is valid for as long as it is held.

    One thread appends. A reader's ``head(n)`` (any ``n`` up to the length when it asked) stays
    correct however much is appended later: the buffer grows by allocating a larger one and
    copying (doubling, so appends cost O(1) amortised), never by resizing in place, and rows
    before ``n`` are never written again.
    """

    def __init__(self, dtype: npt.DTypeLike, row_shape: tuple[int, ...] = ()) -> None:
        self._buffer: npt.NDArray[Any] = np.empty((16, *row_shape), dtype=dtype)
        self._size = 0

    @classmethod
    def of(cls, values: npt.NDArray[T]) -> AppendOnlyArray[T]:
        array: AppendOnlyArray[T] = cls(values.dtype, values.shape[1:])
        array.extend(values)
        return array

    def extend(self, values: npt.ArrayLike) -> None:
        rows = np.asarray(values, dtype=self._buffer.dtype).reshape(-1, *self._buffer.shape[1:])
        needed = self._size + len(rows)
        if needed > len(self._buffer):
            shape = (max(needed, 2 * len(self._buffer)), *self._buffer.shape[1:])
            grown = np.empty(shape, dtype=self._buffer.dtype)
            grown[: self._size] = self._buffer[: self._size]
            grown[self._size : needed] = rows
            self._buffer = grown  # readers holding the old buffer keep their rows
        else:
            self._buffer[self._size : needed] = rows
        self._size = needed

    def head(self, n: int | None = None) -> npt.NDArray[T]:
        """The first ``n`` rows, as a view that later appends do not change. Only the writer
        may leave ``n`` out (all rows): another thread could see a new length before the buffer
        that holds it."""
        return self._buffer[: self._size if n is None else n]

    def __len__(self) -> int:
        return self._size

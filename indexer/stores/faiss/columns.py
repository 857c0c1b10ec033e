"""Evaluate a filter over every document of a store at once, with numpy instead of a loop.

Documents are numbered 0, 1, 2, … in the order they were added. Each metadata key has typed
columns indexed by document number, made the first time a value of that type appears:

* numbers: float64, NaN where absent (ints within ±2^53 are exact in float64);
* booleans: int8, -1 where absent (kept apart from numbers: ``true`` is not ``1``);
* strings: int32 codes into a per-key table of distinct strings, -1 where absent, so equality
  is an integer comparison rather than a string comparison per document;
* dates: float64 POSIX seconds of the strings that are ISO dates, NaN elsewhere.

The document ids are a string column of their own. ``mask`` must equal ``Filter.matches``
applied to every document; the tests check that property on random documents and filters.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.filters import DOC_ID_FIELD, Condition, Filter, OneOf
from indexer.metadata import Metadata, parse_date

Mask = npt.NDArray[np.bool_]
_Array = npt.NDArray[Any]

_MIN_CAPACITY = 64
_ABSENT_CODE = -1
_ABSENT_BOOLEAN = -1
_FEW = 4


@dataclass(slots=True)
class _Strings:
    """A string column: codes per document and the table of distinct strings they point to."""

    codes: _Array | None = None
    code_of: dict[str, int] = field(default_factory=dict)
    values: list[str] = field(default_factory=list)
    seconds: list[float | None] = field(default_factory=list)
    """Per code: the string's instant if it is an ISO date (parsed once per distinct string)."""

    def put(self, number: int, value: str) -> int:
        """Store ``value`` for document ``number``; returns its code."""
        code = self.code_of.get(value)
        if code is None:
            # Table first, codes last: a reader that finds the code already sees the string.
            code = len(self.values)
            self.values.append(value)
            self.seconds.append(parse_date(value))
            self.code_of[value] = code
        codes = self.codes
        if codes is not None and number < len(codes):
            codes[number] = code
        else:
            self.codes = _grown(codes, number, code, np.int32, _ABSENT_CODE)
        return code

    def mask(self, wanted: Collection[str], n: int) -> Mask:
        codes = [code for value in wanted if (code := self.code_of.get(value)) is not None]
        column = self.codes
        if column is None or not codes:
            return np.zeros(n, dtype=np.bool_)
        if len(codes) <= _FEW:
            return _prefix_mask(column, n, lambda c: _equals_any(c, codes))
        # Many values: a lookup table over all codes. Its extra last slot stays False, and is
        # where the absent code -1 indexes.
        table = np.zeros(len(self.values) + 1, dtype=np.bool_)
        table[codes] = True
        return _prefix_mask(column, n, lambda c: table[c])

    def taken(self, numbers: npt.NDArray[np.intp]) -> _Strings:
        """These documents' strings, with a table holding only the strings still used."""
        codes = _taken(self.codes, numbers, np.int32, _ABSENT_CODE)
        if codes is None:
            return _Strings()
        present = codes != _ABSENT_CODE
        used = np.unique(codes[present]).tolist()
        renumber = np.full(len(self.values), _ABSENT_CODE, dtype=np.int32)
        renumber[used] = np.arange(len(used), dtype=np.int32)
        codes[present] = renumber[codes[present]]
        values = [self.values[code] for code in used]
        return _Strings(
            codes,
            {value: code for code, value in enumerate(values)},
            values,
            [self.seconds[code] for code in used],
        )


@dataclass(slots=True)
class _KeyColumns:
    """One metadata key's typed columns; None until a value of that type appears."""

    numbers: _Array | None = None
    booleans: _Array | None = None
    strings: _Strings | None = None
    dates: _Array | None = None


class MetadataColumns:
    """The ids and metadata of a store's documents, column-wise, for vectorised filtering.

    Concurrency: one writer thread calls ``append`` (and ``take``); any number of reader threads
    call ``mask(filter, n)`` at the same time, each with an ``n`` no larger than ``len()`` was
    when it took its snapshot. Appends never change what such a reader sees:

    * a document's values are written before ``len()`` counts it, and never rewritten;
    * a full column is replaced by a larger copy (capacity doubles) and the reference is then
      swapped, never resized in place, so a reader still holding the old array sees the same
      values for every number below its ``n``;
    * columns may be shorter than ``len()`` (they grow only when written), and positions past
      a column's end read as absent, so a key or type first seen after a snapshot is absent for
      every number in it;
    * a string gets its code in the key's table before any document carries that code.

    This relies on single reads and writes of attributes, dict entries and list items being
    atomic, as they are in CPython.
    """

    def __init__(self) -> None:
        self._count = 0
        self._doc_ids = _Strings()
        self._keys: dict[str, _KeyColumns] = {}

    def __len__(self) -> int:
        return self._count

    def append(self, doc_id: str, metadata: Metadata) -> int:
        """Add a document (metadata as ``validate_metadata`` returns it); returns its number."""
        number = self._count
        self._doc_ids.put(number, doc_id)
        for key, value in metadata.items():
            columns = self._keys.get(key)
            if columns is None:
                columns = self._keys[key] = _KeyColumns()
            if isinstance(value, str):
                if columns.strings is None:
                    columns.strings = _Strings()
                strings = columns.strings
                seconds = strings.seconds[strings.put(number, value)]
                if seconds is not None:
                    columns.dates = _put(columns.dates, number, seconds, np.float64, np.nan)
            # bool before int: True is an int in Python but its own type in metadata.
            elif isinstance(value, bool):
                columns.booleans = _put(columns.booleans, number, value, np.int8, _ABSENT_BOOLEAN)
            else:
                columns.numbers = _put(columns.numbers, number, value, np.float64, np.nan)
        self._count = number + 1  # last: the document is now visible to new snapshots
        return number

    def doc_id(self, number: int) -> str:
        if not 0 <= number < self._count:
            raise IndexError(f"no document number {number} (there are {self._count})")
        assert self._doc_ids.codes is not None
        return self._doc_ids.values[int(self._doc_ids.codes[number])]

    def mask(self, filter: Filter, n: int) -> Mask:
        """Which of documents 0 … n-1 pass ``filter``: ``filter.matches`` for each of them."""
        if not 0 <= n <= self._count:
            raise ValueError(f"n must be between 0 and {self._count}, not {n}")
        result: Mask | None = None
        for condition in filter.conditions:
            part = self._condition_mask(condition, n)
            result = part if result is None else np.logical_and(result, part, out=result)
            if not result.any():
                break  # nothing left to narrow
        assert result is not None  # a Filter has at least one condition
        return result

    def take(self, numbers: Sequence[int] | npt.NDArray[np.integer[Any]]) -> MetadataColumns:
        """A new, compact instance with these documents in this order, numbered from 0."""
        index = np.asarray(numbers, dtype=np.intp).reshape(-1)
        if index.size and (int(index.min()) < 0 or int(index.max()) >= self._count):
            raise IndexError(f"document numbers must be between 0 and {self._count - 1}")
        taken = MetadataColumns()
        taken._doc_ids = self._doc_ids.taken(index)
        for key, columns in self._keys.items():
            strings = columns.strings.taken(index) if columns.strings is not None else None
            kept = _KeyColumns(
                numbers=_taken(columns.numbers, index, np.float64, np.nan),
                booleans=_taken(columns.booleans, index, np.int8, _ABSENT_BOOLEAN),
                strings=strings if strings is not None and strings.values else None,
                dates=_taken(columns.dates, index, np.float64, np.nan),
            )
            parts = (kept.numbers, kept.booleans, kept.strings, kept.dates)
            if any(part is not None for part in parts):  # some taken document has the key
                taken._keys[key] = kept
        taken._count = len(index)
        return taken

    def _condition_mask(self, condition: Condition, n: int) -> Mask:
        any_of = condition.any_of
        if condition.field == DOC_ID_FIELD:
            assert any_of is not None  # Condition allows nothing else on document ids
            return self._doc_ids.mask(any_of.strings, n)
        columns = self._keys.get(condition.field)
        if columns is None:
            return np.zeros(n, dtype=np.bool_)
        result = None if any_of is None else _equal_mask(columns, any_of, n)
        kind = condition.range_kind
        if kind is not None:
            column = columns.numbers if kind == "number" else columns.dates
            in_range = (
                np.zeros(n, dtype=np.bool_)
                if column is None
                else _prefix_mask(column, n, lambda c: _in_range(c, condition))
            )
            result = in_range if result is None else np.logical_and(result, in_range, out=result)
        assert result is not None  # a Condition has equality, a range, or both
        return result


def _equal_mask(columns: _KeyColumns, any_of: OneOf, n: int) -> Mask:
    """Documents whose value equals one of ``any_of``'s, each type in its own column."""
    result = np.zeros(n, dtype=np.bool_)
    strings, numbers, booleans = columns.strings, columns.numbers, columns.booleans
    if any_of.strings and strings is not None:
        result |= strings.mask(any_of.strings, n)
    if any_of.numbers and numbers is not None:
        wanted = sorted(any_of.numbers)
        result |= _prefix_mask(numbers, n, lambda column: _isin(column, wanted))
    if any_of.booleans and booleans is not None:
        flags = [int(value) for value in any_of.booleans]
        result |= _prefix_mask(booleans, n, lambda column: _isin(column, flags))
    return result


def _put(array: _Array | None, number: int, value: object, dtype: Any, absent: object) -> _Array:
    """``array`` with ``value`` at ``number``: the same array, or a larger copy if it is full."""
    if array is not None and number < len(array):
        array[number] = value
        return array
    return _grown(array, number, value, dtype, absent)


def _grown(array: _Array | None, number: int, value: object, dtype: Any, absent: object) -> _Array:
    """A larger copy of ``array`` (doubling) with ``value`` at ``number``.

    A new object, never a resize in place: readers holding the old array keep their values.
    """
    capacity = max(_MIN_CAPACITY, 0 if array is None else 2 * len(array))
    while capacity <= number:
        capacity *= 2
    grown = np.full(capacity, absent, dtype=dtype)
    if array is not None:
        grown[: len(array)] = array
    grown[number] = value
    return grown


def _prefix_mask(column: _Array, n: int, test: Any) -> Mask:
    """``test`` over the first ``n`` positions; those past the column's end are absent."""
    if len(column) >= n:
        result: Mask = test(column[:n])
        return result
    result = np.zeros(n, dtype=np.bool_)
    result[: len(column)] = test(column)
    return result


def _isin(column: _Array, wanted: Sequence[float]) -> Mask:
    if len(wanted) <= _FEW:
        return _equals_any(column, wanted)
    return np.isin(column, np.asarray(wanted, dtype=column.dtype))


def _equals_any(column: _Array, wanted: Sequence[float]) -> Mask:
    # For a few values, one comparison pass each beats np.isin's sort or table.
    result: Mask = column == wanted[0]
    for value in wanted[1:]:
        result |= column == value
    return result


def _in_range(column: _Array, condition: Condition) -> Mask:
    # NaN (absent, or a string that is no date) fails every comparison, as it should.
    result: Mask | None = None
    lower, upper = condition.lower, condition.upper
    if lower is not None:
        result = column >= lower.point if lower.inclusive else column > lower.point
    if upper is not None:
        below = column <= upper.point if upper.inclusive else column < upper.point
        result = below if result is None else np.logical_and(result, below, out=result)
    assert result is not None
    return result


def _taken(
    array: _Array | None, numbers: npt.NDArray[np.intp], dtype: Any, absent: object
) -> _Array | None:
    """The column's values at ``numbers`` (absent past its end), or None if all are absent."""
    if array is None:
        return None
    inside = numbers < len(array)
    taken = np.full(len(numbers), absent, dtype=dtype)
    taken[inside] = array[numbers[inside]]
    if isinstance(absent, float):  # NaN: "absent" is not equal to itself
        return taken if not np.isnan(taken).all() else None
    return taken if (taken != absent).any() else None

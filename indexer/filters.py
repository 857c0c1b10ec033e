"""The filter language: which documents a search may return, by id and metadata.

A filter is a JSON object; every field's condition must hold::

    {"section": "world",                        equality
     "tags": ["a", "b"],                        any of (1 to 1000 values)
     "year": {"gte": 2019, "lt": 2021},         operators: eq, in, gt, gte, lt, lte
     "published": {"gte": "2019-05-01"},        ranges over ISO dates compare chronologically
     "doc_id": {"in": ["x.txt", "y.txt"]}}      a document's own id (strings only)

Equality is type-strict as in JSON: ``1`` matches a stored ``1`` or ``1.0`` but never ``true`` or
``"1"``. A range matches only stored values of its own kind: numbers, or strings that are dates.
A document without the field never matches a condition on it.

The model is frozen and hashable, so a parsed filter can be a cache key; equal filters mean the
same thing. ``Filter.matches`` is the reference semantics that the FAISS store's columns
(``indexer.stores.faiss.columns``) vectorise.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from indexer.metadata import (
    MetadataValue,
    describe_type,
    key_problem,
    number_problem,
    parse_date,
    show_key,
)

Scalar = MetadataValue
RangeKind = Literal["number", "date"]

DOC_ID_FIELD = "doc_id"
MAX_FIELDS = 32
MAX_VALUES = 1000
OPERATORS = ("eq", "in", "gt", "gte", "lt", "lte")
_OPERATOR_LIST = ", ".join(OPERATORS)
_SHOWN_CHARS = 40
# An empty equality set (say eq "a" with in ["b"]) has no values to write back; any contradiction
# between eq and in parses back to the same empty set, so the canonical form uses this one.
_CONTRADICTION: dict[str, object] = {"eq": "", "in": ["-"]}


class FilterError(ValueError):
    """A filter that cannot be parsed; the message names the field and what is wrong."""


@dataclass(frozen=True, slots=True)
class OneOf:
    """Equality with any of these values.

    Kept apart by JSON type because Python sets and tuples conflate ``1``, ``1.0`` and ``True``:
    one set would make ``{"x": 1}`` and ``{"x": true}`` equal filters (and share a cache entry).
    """

    strings: frozenset[str] = frozenset()
    numbers: frozenset[float] = frozenset()
    booleans: frozenset[bool] = frozenset()

    @classmethod
    def of(cls, values: Iterable[Scalar]) -> OneOf:
        strings: set[str] = set()
        numbers: set[float] = set()
        booleans: set[bool] = set()
        for value in values:
            if isinstance(value, bool):
                booleans.add(value)
            elif isinstance(value, str):
                strings.add(value)
            else:
                numbers.add(value)
        return cls(frozenset(strings), frozenset(numbers), frozenset(booleans))

    def contains(self, value: Scalar) -> bool:
        if isinstance(value, bool):
            return value in self.booleans
        if isinstance(value, str):
            return value in self.strings
        return value in self.numbers  # 1 and 1.0 hash alike, so either finds the other

    def intersection(self, other: OneOf) -> OneOf:
        return OneOf(
            self.strings & other.strings,
            self.numbers & other.numbers,
            self.booleans & other.booleans,
        )

    def sorted_values(self) -> list[Scalar]:
        """Booleans, then numbers, then strings, each ascending: the canonical order."""
        return [*sorted(self.booleans), *sorted(self.numbers), *sorted(self.strings)]


@dataclass(frozen=True, slots=True)
class Bound:
    """One end of a range: a number, or an ISO date kept as written and compared as an instant."""

    value: float | str
    inclusive: bool
    point: float = field(init=False, compare=False, repr=False)
    """Where the bound lies: the number itself, or the date's POSIX seconds."""

    def __post_init__(self) -> None:
        if isinstance(self.value, str):
            point = parse_date(self.value)
            if point is None:
                raise FilterError(f"a range bound {self.value!r} is not an ISO date")
        elif isinstance(self.value, bool) or number_problem(self.value) is not None:
            raise FilterError(f"a range bound {self.value!r} is not a usable number")
        else:
            point = float(self.value)
        object.__setattr__(self, "point", point)

    @property
    def kind(self) -> RangeKind:
        return "date" if isinstance(self.value, str) else "number"

    def below(self, point: float) -> bool:
        """As a lower bound: does ``point`` satisfy it?"""
        return point >= self.point if self.inclusive else point > self.point

    def above(self, point: float) -> bool:
        """As an upper bound: does ``point`` satisfy it?"""
        return point <= self.point if self.inclusive else point < self.point


@dataclass(frozen=True, slots=True)
class Condition:
    """What one field must satisfy; every part that is set must hold, and at least one is set."""

    field: str
    any_of: OneOf | None = None
    lower: Bound | None = None
    upper: Bound | None = None

    def __post_init__(self) -> None:
        if self.any_of is None and self.lower is None and self.upper is None:
            raise FilterError(f"filter field {show_key(self.field)}: the condition is empty")
        if self.field == DOC_ID_FIELD:
            if self.lower is not None or self.upper is not None:
                raise FilterError(_only_equality_on_doc_ids())
            if self.any_of is not None and (self.any_of.numbers or self.any_of.booleans):
                raise FilterError(f"filter field {DOC_ID_FIELD!r}: document ids are strings")
        else:
            problem = key_problem(self.field)
            if problem is not None:
                raise FilterError(f"filter field {show_key(self.field)}: {problem}")
        lower, upper = self.lower, self.upper
        if lower is not None and upper is not None and lower.kind != upper.kind:
            raise FilterError(_mixed_bounds(self.field))

    @property
    def range_kind(self) -> RangeKind | None:
        bound = self.lower or self.upper
        return None if bound is None else bound.kind

    def matches(self, value: Scalar | None) -> bool:
        """Does a stored ``value`` (None: the document lacks the field) satisfy this condition?"""
        if value is None:
            return False
        if self.any_of is not None and not self.any_of.contains(value):
            return False
        kind = self.range_kind
        if kind is None:
            return True
        point: float | None = None
        if kind == "date":
            point = parse_date(value) if isinstance(value, str) else None
        elif not isinstance(value, bool | str):
            point = float(value)
        if point is None:
            return False  # a range never matches a value of another kind
        return (self.lower is None or self.lower.below(point)) and (
            self.upper is None or self.upper.above(point)
        )

    def to_json(self) -> dict[str, object]:
        operators: dict[str, object] = {}
        if self.any_of is not None:
            values = self.any_of.sorted_values()
            if not values:
                operators.update(_CONTRADICTION)
            elif len(values) == 1:
                operators["eq"] = values[0]
            else:
                operators["in"] = values
        if self.lower is not None:
            operators["gte" if self.lower.inclusive else "gt"] = self.lower.value
        if self.upper is not None:
            operators["lte" if self.upper.inclusive else "lt"] = self.upper.value
        return operators


@dataclass(frozen=True, slots=True)
class Filter:
    """Conditions that must all hold, one per field, kept sorted by field so equal means equal."""

    conditions: tuple[Condition, ...]

    def __post_init__(self) -> None:
        if not self.conditions:
            raise FilterError("a filter needs at least one condition")
        # MAX_FIELDS bounds what a client sends (parse_filter); a key's scope ANDed into it
        # (``both``) may add fields beyond it.
        ordered = tuple(sorted(self.conditions, key=lambda condition: condition.field))
        for before, after in itertools.pairwise(ordered):
            if before.field == after.field:
                raise FilterError(f"filter field {show_key(after.field)}: given twice")
        object.__setattr__(self, "conditions", ordered)

    @classmethod
    def of_doc_ids(cls, ids: Collection[str]) -> Filter:
        """Only these documents (1 to 1000 ids)."""
        return cls((_doc_id_condition(ids),))

    def condition(self, field: str) -> Condition | None:
        return next((c for c in self.conditions if c.field == field), None)

    def matches(self, doc_id: str, metadata: Mapping[str, MetadataValue]) -> bool:
        """Does the document pass? The reference semantics for every other evaluator."""
        for condition in self.conditions:
            value = doc_id if condition.field == DOC_ID_FIELD else metadata.get(condition.field)
            if not condition.matches(value):
                return False
        return True

    def with_doc_ids(self, ids: Collection[str]) -> Filter:
        """This filter, also restricted to documents whose id is one of ``ids`` (1 to 1000)."""
        added = _doc_id_condition(ids)
        existing = self.condition(DOC_ID_FIELD)
        if existing is not None and existing.any_of is not None and added.any_of is not None:
            added = Condition(DOC_ID_FIELD, any_of=existing.any_of.intersection(added.any_of))
        others = tuple(c for c in self.conditions if c.field != DOC_ID_FIELD)
        if len(others) + 1 > MAX_FIELDS:  # the ids come from the client: its limit applies
            raise FilterError(f"a filter has at most {MAX_FIELDS} fields, not {len(others) + 1}")
        return Filter((*others, added))

    def to_json(self) -> dict[str, object]:
        """The canonical form: every field as an operator object, fields and values sorted."""
        return {condition.field: condition.to_json() for condition in self.conditions}


def both(first: Filter | None, second: Filter | None) -> Filter | None:
    """The filter passing exactly the documents that pass ``first`` and ``second`` (None: no
    condition), e.g. a request's filter within an API key's scope."""
    if first is None or second is None:
        return first or second
    fields = {c.field for c in first.conditions} | {c.field for c in second.conditions}
    return Filter(tuple(_both(first.condition(f), second.condition(f)) for f in sorted(fields)))


def _both(first: Condition | None, second: Condition | None) -> Condition:
    if first is None or second is None:
        found = first or second
        assert found is not None
        return found
    if first.range_kind and second.range_kind and first.range_kind != second.range_kind:
        # A value is a number or a date, never both: nothing can pass. An empty set of
        # values says so in a form every evaluator already handles.
        return Condition(first.field, any_of=OneOf())
    any_of = first.any_of
    if second.any_of is not None:
        any_of = second.any_of if any_of is None else any_of.intersection(second.any_of)
    lowers = [b for b in (first.lower, second.lower) if b is not None]
    uppers = [b for b in (first.upper, second.upper) if b is not None]
    # As in _parse_operators: of two bounds on one side, the one admitting less.
    lower = max(lowers, key=lambda b: (b.point, not b.inclusive), default=None)
    upper = min(uppers, key=lambda b: (b.point, b.inclusive), default=None)
    return Condition(first.field, any_of=any_of, lower=lower, upper=upper)


def parse_filter(raw: object) -> Filter | None:
    """The filter a decoded JSON value describes; None for no filter (None or ``{}``)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise FilterError(f"a filter must be a JSON object, not {describe_type(raw)}")
    if not raw:
        return None
    if len(raw) > MAX_FIELDS:
        raise FilterError(f"a filter has at most {MAX_FIELDS} fields, not {len(raw)}")
    return Filter(tuple(_parse_condition(name, spec) for name, spec in raw.items()))


def parse_filter_json(text: str) -> Filter | None:
    """The filter in a JSON text (a query-string parameter); None for ``{}`` or ``null``."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise FilterError(f"the filter is not valid JSON: {error}") from None
    except ValueError:  # Python refuses to convert ints of more than 4300 digits
        raise FilterError("the filter is not valid JSON: a number has too many digits") from None
    except RecursionError:
        raise FilterError("the filter is not valid JSON: nested too deeply") from None
    return parse_filter(raw)


def _parse_condition(name: object, spec: object) -> Condition:
    if name != DOC_ID_FIELD:
        problem = key_problem(name)
        if problem is not None:
            raise FilterError(f"filter field {show_key(name)}: {problem}")
    assert isinstance(name, str)  # key_problem rejects every other type
    where = f"filter field {show_key(name)}"
    if isinstance(spec, dict):
        return _parse_operators(name, where, spec)
    if isinstance(spec, list):
        return Condition(name, any_of=_parse_values(name, where, spec, "a list"))
    return Condition(name, any_of=OneOf.of([_parse_scalar(name, where, spec, "a value")]))


def _parse_operators(name: str, where: str, spec: dict[object, object]) -> Condition:
    if not spec:
        raise FilterError(f"{where}: an operator object needs at least one of {_OPERATOR_LIST}")
    any_of: OneOf | None = None
    lowers: list[Bound] = []
    uppers: list[Bound] = []
    for operator, operand in spec.items():
        if operator == "eq":
            found = OneOf.of([_parse_scalar(name, where, operand, "'eq'")])
        elif operator == "in":
            if not isinstance(operand, list):
                raise FilterError(
                    f"{where}: 'in' needs a list of values, not {describe_type(operand)}"
                )
            found = _parse_values(name, where, operand, "'in'")
        elif operator in ("gt", "gte", "lt", "lte"):
            if name == DOC_ID_FIELD:
                raise FilterError(_only_equality_on_doc_ids())
            bound = Bound(_parse_bound(where, operand), inclusive=operator in ("gte", "lte"))
            (lowers if operator.startswith("g") else uppers).append(bound)
            continue
        else:
            raise FilterError(
                f"{where}: unknown operator {show_key(operator)} (use {_OPERATOR_LIST})"
            )
        # eq and in together: the value must satisfy both.
        any_of = found if any_of is None else any_of.intersection(found)
    if len({bound.kind for bound in lowers + uppers}) > 1:
        raise FilterError(_mixed_bounds(name))
    # gt with gte (or lt with lte): both must hold, so only the one that admits less matters.
    lower = max(lowers, key=lambda b: (b.point, not b.inclusive), default=None)
    upper = min(uppers, key=lambda b: (b.point, b.inclusive), default=None)
    return Condition(name, any_of=any_of, lower=lower, upper=upper)


def _parse_values(name: str, where: str, values: list[object], what: str) -> OneOf:
    if not 1 <= len(values) <= MAX_VALUES:
        raise FilterError(f"{where}: {what} needs 1 to {MAX_VALUES} values")
    return OneOf.of(_parse_scalar(name, where, value, f"{what} value") for value in values)


def _parse_scalar(name: str, where: str, value: object, what: str) -> Scalar:
    # Checked here, before eq and in are intersected: an intersection could hide a bad value.
    if name == DOC_ID_FIELD and not isinstance(value, str):
        raise FilterError(f"{where}: document ids are strings")
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        problem = number_problem(value)
        if problem is not None:
            raise FilterError(f"{where}: {problem}")
        return value
    raise FilterError(
        f"{where}: {what} must be a string, number or boolean, not {describe_type(value)}"
    )


def _parse_bound(where: str, value: object) -> float | str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        problem = number_problem(value)
        if problem is not None:
            raise FilterError(f"{where}: {problem}")
        return value
    if isinstance(value, str) and parse_date(value) is not None:
        return value
    raise FilterError(f"{where}: range bounds must be numbers or ISO dates, not {_show(value)}")


def _doc_id_condition(ids: Collection[str]) -> Condition:
    values = list(ids)
    if not 1 <= len(values) <= MAX_VALUES:
        raise FilterError(f"filter field {DOC_ID_FIELD!r}: 'in' needs 1 to {MAX_VALUES} values")
    if not all(isinstance(value, str) for value in values):
        raise FilterError(f"filter field {DOC_ID_FIELD!r}: document ids are strings")
    return Condition(DOC_ID_FIELD, any_of=OneOf.of(values))


def _only_equality_on_doc_ids() -> str:
    return f"filter field {DOC_ID_FIELD!r}: document ids take only eq and in, not ranges"


def _mixed_bounds(name: str) -> str:
    return f"filter field {show_key(name)}: range bounds must be all numbers or all ISO dates"


def _show(value: object) -> str:
    """A filter value for a message: as JSON, cut short."""
    try:
        shown = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return describe_type(value)
    return shown if len(shown) <= _SHOWN_CHARS else shown[: _SHOWN_CHARS - 1] + "…"

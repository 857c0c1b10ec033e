"""Filters as Milvus boolean expressions, so Milvus applies them before ranking.

Milvus Lite compares JSON values loosely (``true == 1`` holds there, not on a server), while our
filter language is type-strict (``indexer.filters``). So each passage row carries, besides the
document's metadata as written, a ``fields`` JSON object with every value under a key that names
its kind: ``s_`` strings, ``n_`` numbers, ``b_`` booleans, and ``d_`` the POSIX seconds of
strings that are ISO dates. A condition then only ever meets values of its own kind, on every
Milvus.
"""

from __future__ import annotations

from collections.abc import Mapping

from indexer.filters import DOC_ID_FIELD, Bound, Condition, Filter, OneOf
from indexer.metadata import MetadataValue, parse_date

FIELDS = "fields"
"""The JSON field holding the typed copies of a document's metadata."""
# Matches no row: auto-generated primary keys are positive. (Milvus servers reject a bare
# `false` as an expression.)
NOTHING = "pk < 0"


def typed_fields(metadata: Mapping[str, MetadataValue]) -> dict[str, object]:
    """The ``fields`` value for a document's metadata."""
    typed: dict[str, object] = {}
    for key, value in metadata.items():
        if isinstance(value, bool):
            typed[f"b_{key}"] = value
        elif isinstance(value, str):
            typed[f"s_{key}"] = value
            point = parse_date(value)
            if point is not None:
                typed[f"d_{key}"] = point
        else:
            typed[f"n_{key}"] = value
    return typed


def expression(filter: Filter | None) -> str:
    """The Milvus expression selecting the passages of documents that pass ``filter``
    ("" for no filter)."""
    if filter is None:
        return ""
    return " and ".join(f"({_condition(c)})" for c in filter.conditions)


def literal(value: str) -> str:
    """A Milvus string literal. Only the quote and the backslash are escaped (with the usual
    control characters): Milvus Lite rejects ``\\u`` escapes, so other characters go as they are."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


def _condition(condition: Condition) -> str:
    if condition.field == DOC_ID_FIELD:
        assert condition.any_of is not None  # doc_id takes equality only
        strings = sorted(condition.any_of.strings)
        if not strings:
            return NOTHING
        return f"doc_id in [{', '.join(literal(s) for s in strings)}]"
    parts: list[str] = []
    if condition.any_of is not None:
        parts.append(_one_of(condition.field, condition.any_of))
    kind = condition.range_kind
    if kind is not None:
        key = _key("n" if kind == "number" else "d", condition.field)
        if condition.lower is not None:
            parts.append(
                f"{key} {'>=' if condition.lower.inclusive else '>'} {_point(condition.lower)}"
            )
        if condition.upper is not None:
            parts.append(
                f"{key} {'<=' if condition.upper.inclusive else '<'} {_point(condition.upper)}"
            )
    return " and ".join(parts)


def _one_of(field: str, values: OneOf) -> str:
    # Milvus Lite has no `in` on a JSON key: equalities joined by `or` work on every Milvus.
    options = [f"{_key('s', field)} == {literal(s)}" for s in sorted(values.strings)]
    options += [f"{_key('n', field)} == {_number(n)}" for n in sorted(values.numbers)]
    options += [
        f"{_key('b', field)} == {'true' if b else 'false'}" for b in sorted(values.booleans)
    ]
    if not options:
        return NOTHING
    return options[0] if len(options) == 1 else "(" + " or ".join(options) + ")"


def _key(kind: str, field: str) -> str:
    return f'{FIELDS}["{kind}_{field}"]'  # metadata keys are ASCII words: nothing to escape


def _point(bound: Bound) -> str:
    return _number(bound.point)


def _number(value: float) -> str:
    # Integral values as integers: Milvus parses `2010` exactly, and `2010.0` the same.
    return (
        str(int(value)) if float(value).is_integer() and abs(value) < 2**63 else repr(float(value))
    )

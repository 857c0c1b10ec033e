"""What the routers' bodies share: text that must not be blank, metadata, filters, errors."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    WithJsonSchema,
)

from indexer.filters import MAX_FIELDS, MAX_VALUES, Filter, parse_filter
from indexer.metadata import (
    KEY_PATTERN,
    MAX_KEYS,
    MAX_SAFE_INTEGER,
    MAX_STRING_CHARS,
    RESERVED_KEYS,
    validate_metadata,
)

# bool first: a JSON true must stay a boolean, not become 1.
MetadataValue = StrictBool | StrictInt | StrictFloat | StrictStr
# validate_metadata's rules, stated in full, so that what the schema allows is accepted.
METADATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": MAX_KEYS,
    "propertyNames": {"pattern": KEY_PATTERN, "not": {"enum": sorted(RESERVED_KEYS)}},
    "additionalProperties": {
        "anyOf": [
            {"type": "string", "maxLength": MAX_STRING_CHARS},
            {"type": "number", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER},
            {"type": "boolean"},
        ]
    },
}
MetadataIn = Annotated[
    dict[str, MetadataValue],
    AfterValidator(validate_metadata),
    WithJsonSchema(METADATA_SCHEMA),
    Field(
        description=f"A flat object of strings, numbers, booleans and ISO dates (as strings): "
        f"at most {MAX_KEYS} keys (letters, digits, underscores; not doc_id), strings up to "
        f"{MAX_STRING_CHARS} characters, numbers within ±2^53. Searches filter on it.",
    ),
]
MetadataOut = Annotated[
    dict[str, MetadataValue], Field(description="The document's metadata, as written.")
]

# Not only whitespace, for the schema: a character that Python's str.strip() keeps (the checks
# use strip, for a clear message). Spelled out rather than \S because JSON Schema (ECMAScript),
# Python and Rust disagree on what \s covers, and the schema must accept exactly what the
# service does (tests/unit/test_schemas.py compares the two over all of Unicode).
NOT_BLANK = r"[^\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
NOT_BLANK_SCHEMA = {"pattern": NOT_BLANK}


def trimmed(text: str) -> str:
    """``text`` without surrounding whitespace, which must leave something."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("it is empty or only whitespace")
    return stripped


def not_blank(text: str) -> str:
    trimmed(text)
    return text


# Up to 1000 characters, trimmed, and not blank (a query, a title); each use adds its
# description with a Field of its own.
ShortText = Annotated[
    str,
    StringConstraints(max_length=1000),
    AfterValidator(trimmed),
    Field(json_schema_extra=NOT_BLANK_SCHEMA),
]


def integral(value: object) -> object:
    # JSON Schema's "integer" includes 5.0; strict bodies would otherwise refuse it.
    return int(value) if isinstance(value, float) and value.is_integer() else value


# parse_filter's rules, stated in full (schemathesis checks that the schema and the service
# agree): keys as for metadata, numbers within ±2^53, a range's bounds all numbers or all dates,
# and doc_id compared only for equality, with strings.
_NUMBER = {"type": "number", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER}
_DATE = {
    "anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}],
    "description": "an ISO 8601 date or RFC 3339 date-time",
}
_SCALAR = {"anyOf": [{"type": "string"}, _NUMBER, {"type": "boolean"}]}


def _list_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item, "minItems": 1, "maxItems": MAX_VALUES}


def _operators(value: dict[str, Any], bound: dict[str, Any] | None) -> dict[str, Any]:
    ranges = {} if bound is None else dict.fromkeys(("gt", "gte", "lt", "lte"), bound)
    return {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {"eq": value, "in": _list_of(value), **ranges},
    }


_DOC_IDS = {"type": "string"}
FILTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": MAX_FIELDS,
    "description": "Only documents whose fields all match (AND). A field is `doc_id` or a "
    "metadata key; its condition is a value (equality), a list of values (any of), or "
    "operators: `eq`, `in`, `gt`, `gte`, `lt`, `lte`. Ranges take numbers or ISO dates "
    "(`2019-05-01`, `2019-05-01T12:00:00Z`). Applied before ranking, in every mode.",
    "propertyNames": {"pattern": KEY_PATTERN},
    "properties": {"doc_id": {"anyOf": [_DOC_IDS, _list_of(_DOC_IDS), _operators(_DOC_IDS, None)]}},
    "additionalProperties": {
        "anyOf": [
            _SCALAR,
            _list_of(_SCALAR),
            _operators(_SCALAR, _NUMBER),
            _operators(_SCALAR, _DATE),
        ]
    },
    "examples": [{"section": "world", "year": {"gte": 2019}}],
}


def _filter(raw: object) -> Filter | None:
    if isinstance(raw, Filter):
        return raw
    return parse_filter(raw)  # a FilterError is a ValueError: a 422 naming the problem


FilterBody = Annotated[
    Filter | None,
    PlainValidator(_filter),
    PlainSerializer(lambda f: None if f is None else f.to_json()),
    WithJsonSchema({"anyOf": [FILTER_SCHEMA, {"type": "null"}]}),
]


class ErrorBody(BaseModel):
    detail: str | list[dict[str, object]]

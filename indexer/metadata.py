"""Per-document metadata: a flat JSON object of strings, numbers and booleans.

Metadata is what searches are filtered on (see ``indexer.filters``). It is validated once, when
a document is added, so that everything downstream (filters, the column store, JSON clients) can
rely on the limits below instead of re-checking.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime

MetadataValue = str | int | float | bool
Metadata = dict[str, MetadataValue]

MAX_KEYS = 32
KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
RESERVED_KEYS = frozenset({"doc_id"})
"""``doc_id`` is the filter field for a document's own id, so metadata may not shadow it."""
MAX_STRING_CHARS = 512
"""With the key limits, bounds an object to about 64 KiB of UTF-8. Every limit here is one a JSON
Schema can state, so the API's schema says exactly what is accepted (a byte total cannot be)."""
MAX_SAFE_INTEGER = 2**53
"""Numbers beyond this lose integer precision in float64 (and in JavaScript clients)."""

_KEY = re.compile(KEY_PATTERN)
# Strict shape first: fromisoformat alone also accepts forms like 20190501 and week dates.
# Every RFC 3339 date-time (what JSON Schema's "date-time" format means) is one, in either case.
_DATE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?)?"
)
_SHOWN_CHARS = 40


class MetadataError(ValueError):
    """Metadata that breaks a rule; the message names the key and the problem."""


def validate_metadata(raw: object) -> Metadata:
    """A checked copy of ``raw`` (same key order), or MetadataError. ``None`` is no metadata."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise MetadataError(f"metadata must be a JSON object, not {describe_type(raw)}")
    if len(raw) > MAX_KEYS:
        raise MetadataError(f"metadata has {len(raw)} keys; at most {MAX_KEYS} are allowed")
    checked: Metadata = {}
    for key, value in raw.items():
        problem = key_problem(key)
        if problem is None and key in RESERVED_KEYS:
            problem = "reserved for the document's own id"
        if problem is not None:
            raise MetadataError(f"metadata key {show_key(key)}: {problem}")
        checked[key] = _checked_value(key, value)
    return checked


def encode_metadata(metadata: Metadata) -> bytes:
    """The compact UTF-8 JSON form whose size is limited."""
    return json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def parse_date(text: str) -> float | None:
    """POSIX seconds (UTC) of an ISO 8601 date or date-time, or None if ``text`` is not one.

    Accepted: ``YYYY-MM-DD`` and ``YYYY-MM-DDTHH:MM[:SS[.fraction]]`` (``T`` or a space) with an
    optional ``Z`` or ``±HH:MM`` offset; fractions finer than microseconds are cut. A date, or a
    date-time without an offset, is UTC.
    """
    if _DATE.fullmatch(text) is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        moment = datetime.fromisoformat(text.upper())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (ValueError, OverflowError):  # the right shape but no such day, hour or offset
        return None


def key_problem(key: object) -> str | None:
    """What is wrong with ``key`` as a metadata key, or None if nothing."""
    if not isinstance(key, str):
        return f"a key must be a string, not {describe_type(key)}"
    if _KEY.fullmatch(key) is None:
        return (
            "a key must be 1 to 64 letters, digits or underscores (ASCII), "
            "not starting with a digit"
        )
    return None


def number_problem(value: int | float) -> str | None:
    """What is wrong with ``value`` as a number in metadata or a filter, or None if nothing."""
    # Compare ints as ints: float() of a huge int overflows rather than failing the check.
    if isinstance(value, int):
        within = -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    else:
        within = math.isfinite(value) and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    return None if within else "a number must be finite and within ±2^53"


def describe_type(value: object) -> str:
    """The JSON type of ``value`` for messages: "a list", "an object", "null", …"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__} (not a JSON value)"


def show_key(key: object) -> str:
    """``key`` quoted for a message, cut short so a huge bad key cannot flood a log line."""
    shown = repr(key)
    return shown if len(shown) <= _SHOWN_CHARS else shown[: _SHOWN_CHARS - 1] + "…"


def _checked_value(key: str, value: object) -> MetadataValue:
    # bool before int: True is an int in Python but a distinct type in metadata.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int | float):
        problem = number_problem(value)
        if problem is not None:
            raise MetadataError(f"metadata key {show_key(key)}: {problem}")
        return int(value) if isinstance(value, int) else float(value)
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise MetadataError(
                f"metadata key {show_key(key)}: a string must be at most {MAX_STRING_CHARS} "
                f"characters, not {len(value)}"
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # json.loads lets lone surrogates ("\ud800") through; they cannot be stored as UTF-8.
            raise MetadataError(
                f"metadata key {show_key(key)}: a string must be valid Unicode "
                "(it holds a lone surrogate)"
            ) from None
        return str(value)
    if value is None:
        raise MetadataError(
            f"metadata key {show_key(key)}: null is not a value (leave the key out instead)"
        )
    raise MetadataError(
        f"metadata key {show_key(key)}: a value must be a string, number or boolean, "
        f"not {describe_type(value)}"
    )

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from indexer.metadata import (
    MAX_KEYS,
    MAX_SAFE_INTEGER,
    MAX_STRING_CHARS,
    MetadataError,
    encode_metadata,
    parse_date,
    validate_metadata,
)

KEY_RULE = "a key must be 1 to 64 letters, digits or underscores (ASCII), not starting with a digit"
NUMBER_RULE = "a number must be finite and within ±2^53"


def test_valid_metadata_is_copied_in_order_with_types_kept() -> None:
    raw = {"section": "world", "year": 2019, "score": 0.5, "breaking": True, "_x9": ""}
    checked = validate_metadata(raw)
    assert checked == raw
    assert checked is not raw
    assert list(checked) == ["section", "year", "score", "breaking", "_x9"]
    assert type(checked["breaking"]) is bool
    assert type(checked["year"]) is int
    assert type(checked["score"]) is float


def test_none_is_no_metadata() -> None:
    assert validate_metadata(None) == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([1], "metadata must be a JSON object, not a list"),
        ("x", "metadata must be a JSON object, not a string"),
        ({"a-b": 1}, f"metadata key 'a-b': {KEY_RULE}"),
        ({"9lives": 1}, f"metadata key '9lives': {KEY_RULE}"),
        ({"": 1}, f"metadata key '': {KEY_RULE}"),
        ({"é": 1}, f"metadata key 'é': {KEY_RULE}"),
        ({"a\n": 1}, f"metadata key 'a\\n': {KEY_RULE}"),
        ({"k" * 65: 1}, f"metadata key '{'k' * 38}…: {KEY_RULE}"),
        ({1: 1}, "metadata key 1: a key must be a string, not a number"),
        ({"doc_id": "x"}, "metadata key 'doc_id': reserved for the document's own id"),
        ({"x": None}, "metadata key 'x': null is not a value (leave the key out instead)"),
        (
            {"x": [1]},
            "metadata key 'x': a value must be a string, number or boolean, not a list",
        ),
        (
            {"x": {"y": 1}},
            "metadata key 'x': a value must be a string, number or boolean, not an object",
        ),
        ({"year": float("nan")}, f"metadata key 'year': {NUMBER_RULE}"),
        ({"year": float("inf")}, f"metadata key 'year': {NUMBER_RULE}"),
        ({"year": -float("inf")}, f"metadata key 'year': {NUMBER_RULE}"),
        ({"year": MAX_SAFE_INTEGER + 1}, f"metadata key 'year': {NUMBER_RULE}"),
        ({"year": -MAX_SAFE_INTEGER - 1}, f"metadata key 'year': {NUMBER_RULE}"),
        ({"year": 10**400}, f"metadata key 'year': {NUMBER_RULE}"),
        ({"year": 1e300}, f"metadata key 'year': {NUMBER_RULE}"),
        (
            {"x": "a" * (MAX_STRING_CHARS + 1)},
            "metadata key 'x': a string must be at most 512 characters, not 513",
        ),
        (
            {"x": "\ud800"},
            "metadata key 'x': a string must be valid Unicode (it holds a lone surrogate)",
        ),
    ],
)
def test_bad_metadata_is_rejected_with_the_key_and_the_problem(raw: object, message: str) -> None:
    with pytest.raises(MetadataError) as caught:
        validate_metadata(raw)
    assert str(caught.value) == message


def test_metadata_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="reserved"):
        validate_metadata({"doc_id": "x"})


def test_limits_are_inclusive() -> None:
    at_limits = {
        "k" * 64: "a" * MAX_STRING_CHARS,
        "big": MAX_SAFE_INTEGER,
        "small": -MAX_SAFE_INTEGER,
        "float": float(MAX_SAFE_INTEGER),
    }
    assert validate_metadata(at_limits) == at_limits
    many = {f"k{i}": i for i in range(MAX_KEYS)}
    assert validate_metadata(many) == many


def test_too_many_keys() -> None:
    with pytest.raises(MetadataError) as caught:
        validate_metadata({f"k{i}": i for i in range(MAX_KEYS + 1)})
    assert str(caught.value) == "metadata has 33 keys; at most 32 are allowed"


def test_largest_object_is_bounded_by_the_per_item_limits() -> None:
    # No byte total (a JSON Schema cannot state one): the key, count and length limits bound it.
    widest = {f"k{i:02d}" + "k" * 61: "\U0010ffff" * MAX_STRING_CHARS for i in range(MAX_KEYS)}
    assert validate_metadata(widest) == widest
    assert len(encode_metadata(widest)) < 70_000


def test_bool_is_not_a_number_and_subclasses_are_normalised() -> None:
    class Label(str):
        pass

    checked = validate_metadata({"flag": False, "label": Label("x")})
    assert checked["flag"] is False
    assert type(checked["label"]) is str


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-05-01", _utc(2019, 5, 1)),
        ("2019-05-01T10:30", _utc(2019, 5, 1, 10, 30)),
        ("2019-05-01 10:30", _utc(2019, 5, 1, 10, 30)),
        ("2019-05-01T10:30:15", _utc(2019, 5, 1, 10, 30, 15)),
        ("2019-05-01T10:30:15.5", _utc(2019, 5, 1, 10, 30, 15) + 0.5),
        ("2019-05-01T10:30:15.123456Z", _utc(2019, 5, 1, 10, 30, 15) + 0.123456),
        # RFC 3339 (JSON Schema's date-time): any fraction (cut to microseconds), either case.
        ("2019-05-01T10:30:15.1234567Z", _utc(2019, 5, 1, 10, 30, 15) + 0.123456),
        ("2019-05-01t10:30:15z", _utc(2019, 5, 1, 10, 30, 15)),
        ("2019-05-01T10:30Z", _utc(2019, 5, 1, 10, 30)),
        ("2019-05-01T10:30+02:00", _utc(2019, 5, 1, 8, 30)),
        ("2019-05-01T00:30-05:30", _utc(2019, 5, 1, 6, 0)),
        ("2020-02-29", _utc(2020, 2, 29)),
        ("1969-12-31T23:59:59Z", -1.0),
    ],
)
def test_iso_dates_parse_to_utc_seconds(text: str, expected: float) -> None:
    assert parse_date(text) == pytest.approx(expected, abs=1e-6)


def test_naive_date_times_are_utc_and_offsets_shift_the_instant() -> None:
    naive = parse_date("2019-05-01T12:00:00")
    assert naive == parse_date("2019-05-01T12:00:00Z")
    assert naive == parse_date("2019-05-01T14:00:00+02:00")
    assert parse_date("2019-05-01") == parse_date("2019-05-01T00:00")


@pytest.mark.parametrize(
    "text",
    [
        "20190501",
        "2019-13-01",
        "2019-02-29",
        "2019-04-31",
        "2019-5-1",
        "19-05-01",
        "2019-05-01T",
        "2019-05-01T10",
        "2019-05-01T24:00",
        "2019-05-01T10:60",
        "2019-05-01T10:30+24:00",
        "2019-05-01T10:30+0200",
        "2019-W18",
        "0000-01-01",
        "\u0662\u0660\u0661\u0669-05-01",  # Arabic-Indic digits: \d matches them
        " 2019-05-01",
        "2019-05-01\n",
        "yesterday",
        "",
    ],
)
def test_anything_else_is_not_a_date(text: str) -> None:
    assert parse_date(text) is None

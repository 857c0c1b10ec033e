from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.filters import (
    Bound,
    Condition,
    Filter,
    FilterError,
    OneOf,
    both,
    parse_filter,
    parse_filter_json,
)
from indexer.metadata import MetadataValue

OPERATORS = "(use eq, in, gt, gte, lt, lte)"
VALUE_TYPES = "a string, number or boolean"
NUMBER_RULE = "a number must be finite and within ±2^53"


def parsed(raw: object) -> Filter:
    result = parse_filter(raw)
    assert result is not None
    return result


def passes(raw: object, metadata: dict[str, MetadataValue], doc_id: str = "d1") -> bool:
    return parsed(raw).matches(doc_id, metadata)


def test_no_filter() -> None:
    assert parse_filter(None) is None
    assert parse_filter({}) is None
    assert parse_filter_json("{}") is None
    assert parse_filter_json(" null ") is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([{"a": 1}], "a filter must be a JSON object, not a list"),
        ("section", "a filter must be a JSON object, not a string"),
        (3, "a filter must be a JSON object, not a number"),
        (True, "a filter must be a JSON object, not a boolean"),
        ({"year": {"gtee": 2019}}, f"filter field 'year': unknown operator 'gtee' {OPERATORS}"),
        ({"year": {"$gt": 2019}}, f"filter field 'year': unknown operator '$gt' {OPERATORS}"),
        (
            {"year": {}},
            "filter field 'year': an operator object needs at least one of "
            "eq, in, gt, gte, lt, lte",
        ),
        (
            {"year": {"gt": True}},
            "filter field 'year': range bounds must be numbers or ISO dates, not true",
        ),
        (
            {"year": {"lt": "soon"}},
            "filter field 'year': range bounds must be numbers or ISO dates, not \"soon\"",
        ),
        (
            {"year": {"lte": "20190501"}},
            "filter field 'year': range bounds must be numbers or ISO dates, not \"20190501\"",
        ),
        (
            {"year": {"gte": None}},
            "filter field 'year': range bounds must be numbers or ISO dates, not null",
        ),
        (
            {"year": {"gte": [1, 2]}},
            "filter field 'year': range bounds must be numbers or ISO dates, not [1, 2]",
        ),
        (
            {"year": {"gte": 2019, "lt": "2021-01-01"}},
            "filter field 'year': range bounds must be all numbers or all ISO dates",
        ),
        (
            {"year": {"gt": 1, "gte": "2019-01-01"}},
            "filter field 'year': range bounds must be all numbers or all ISO dates",
        ),
        ({"year": {"gt": float("nan")}}, f"filter field 'year': {NUMBER_RULE}"),
        ({"year": float("inf")}, f"filter field 'year': {NUMBER_RULE}"),
        ({"year": [1, 2**53 + 1]}, f"filter field 'year': {NUMBER_RULE}"),
        ({"year": {"eq": -(2**53) - 1}}, f"filter field 'year': {NUMBER_RULE}"),
        ({"doc_id": 7}, "filter field 'doc_id': document ids are strings"),
        ({"doc_id": ["a", True]}, "filter field 'doc_id': document ids are strings"),
        ({"doc_id": {"eq": None}}, "filter field 'doc_id': document ids are strings"),
        # A bad id is reported even where eq and in together would match nothing anyway.
        ({"doc_id": {"eq": 1, "in": ["a"]}}, "filter field 'doc_id': document ids are strings"),
        (
            {"doc_id": {"gte": "a"}},
            "filter field 'doc_id': document ids take only eq and in, not ranges",
        ),
        ({"tags": {"in": []}}, "filter field 'tags': 'in' needs 1 to 1000 values"),
        ({"tags": {"in": list(range(1001))}}, "filter field 'tags': 'in' needs 1 to 1000 values"),
        ({"tags": []}, "filter field 'tags': a list needs 1 to 1000 values"),
        ({"tags": {"in": "a"}}, "filter field 'tags': 'in' needs a list of values, not a string"),
        ({"tags": None}, f"filter field 'tags': a value must be {VALUE_TYPES}, not null"),
        ({"tags": [None]}, f"filter field 'tags': a list value must be {VALUE_TYPES}, not null"),
        (
            {"tags": ["a", {"b": 1}]},
            f"filter field 'tags': a list value must be {VALUE_TYPES}, not an object",
        ),
        ({"tags": [["a"]]}, f"filter field 'tags': a list value must be {VALUE_TYPES}, not a list"),
        ({"tags": {"eq": None}}, f"filter field 'tags': 'eq' must be {VALUE_TYPES}, not null"),
        ({"tags": {"eq": ["a"]}}, f"filter field 'tags': 'eq' must be {VALUE_TYPES}, not a list"),
        (
            {"tags": {"in": [{"a": 1}]}},
            f"filter field 'tags': 'in' value must be {VALUE_TYPES}, not an object",
        ),
        # A nested object is read as operators, so its keys are reported as unknown operators.
        ({"tags": {"name": "x"}}, f"filter field 'tags': unknown operator 'name' {OPERATORS}"),
        (
            {"a-b": 1},
            "filter field 'a-b': a key must be 1 to 64 letters, digits or underscores (ASCII), "
            "not starting with a digit",
        ),
        ({f"k{i}": i for i in range(33)}, "a filter has at most 32 fields, not 33"),
    ],
)
def test_bad_filters_name_the_field_and_the_problem(raw: object, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(raw)
    assert str(caught.value) == message


def test_limits_are_inclusive() -> None:
    assert len(parsed({f"k{i}": i for i in range(32)}).conditions) == 32
    many = parsed({"n": {"in": list(range(1000))}})
    assert many.matches("d", {"n": 999})
    assert not many.matches("d", {"n": 1000})


def test_filter_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown operator"):
        parse_filter({"x": {"like": "a"}})


def test_invalid_json_text_says_so_with_jsons_message() -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter_json('{"year": }')
    assert str(caught.value) == (
        "the filter is not valid JSON: Expecting value: line 1 column 10 (char 9)"
    )
    with pytest.raises(FilterError, match="not valid JSON: nested too deeply"):
        parse_filter_json("[" * 100_000)
    with pytest.raises(FilterError, match="not valid JSON: a number has too many digits"):
        parse_filter_json('{"n": ' + "9" * 5000 + "}")
    with pytest.raises(FilterError, match="a filter must be a JSON object, not a list"):
        parse_filter_json("[]")


def test_json_text_parses_like_the_decoded_value() -> None:
    text = '{"section": "world", "year": {"gte": 2019}}'
    assert parse_filter_json(text) == parse_filter(json.loads(text))


def test_scalar_list_and_operator_forms_are_the_same_filter() -> None:
    assert parsed({"s": "a"}) == parsed({"s": ["a"]}) == parsed({"s": {"eq": "a"}})
    assert parsed({"s": ["a", "b"]}) == parsed({"s": {"in": ["b", "a", "a"]}})


def test_equality_is_type_strict() -> None:
    one = {"n": 1}
    assert passes(one, {"n": 1})
    assert passes(one, {"n": 1.0})
    assert not passes(one, {"n": True})
    assert not passes(one, {"n": "1"})
    assert passes({"n": 1.0}, {"n": 1})
    assert passes({"b": True}, {"b": True})
    assert not passes({"b": True}, {"b": 1})
    assert not passes({"b": True}, {"b": "true"})
    assert not passes({"b": False}, {"b": 0})
    assert passes({"s": "1"}, {"s": "1"})
    assert not passes({"s": "1"}, {"s": 1})
    assert not passes({"s": "World"}, {"s": "world"})
    assert passes({"d": "2019-05-01"}, {"d": "2019-05-01"})
    # Equality on a date is on its text, not its instant.
    assert not passes({"d": "2019-05-01"}, {"d": "2019-05-01T00:00:00Z"})


def test_filters_that_differ_only_in_type_are_different_filters() -> None:
    # Python sets conflate 1 and True; as cache keys these must not collide.
    assert parsed({"n": 1}) != parsed({"n": True})
    assert parsed({"n": [0, 1]}) != parsed({"n": [False, True]})
    assert len({parsed({"n": 1}), parsed({"n": True}), parsed({"n": "1"})}) == 3
    assert parsed({"n": 1}) == parsed({"n": 1.0})
    assert hash(parsed({"n": 1})) == hash(parsed({"n": 1.0}))


def test_in_list_matches_any_of_mixed_types() -> None:
    raw = {"v": ["a", 2, False]}
    assert passes(raw, {"v": "a"})
    assert passes(raw, {"v": 2.0})
    assert passes(raw, {"v": False})
    assert not passes(raw, {"v": 0})
    assert not passes(raw, {"v": True})
    assert not passes(raw, {"v": "2"})


def test_a_missing_key_never_matches() -> None:
    assert not passes({"x": "a"}, {})
    assert not passes({"x": {"gte": 0}}, {"y": 5})


def test_every_condition_must_hold() -> None:
    raw = {"section": "world", "year": {"gte": 2019}}
    assert passes(raw, {"section": "world", "year": 2019})
    assert not passes(raw, {"section": "world", "year": 2018})
    assert not passes(raw, {"section": "sport", "year": 2020})


def test_numeric_ranges() -> None:
    raw = {"year": {"gt": 2000, "lte": 2010.5}}
    assert not passes(raw, {"year": 2000})
    assert passes(raw, {"year": 2000.001})
    assert passes(raw, {"year": 2010.5})
    assert not passes(raw, {"year": 2011})
    assert passes({"year": {"gte": 2000, "lt": 2001}}, {"year": 2000})
    assert not passes({"year": {"gte": 2000, "lt": 2001}}, {"year": 2001})


def test_a_range_never_matches_another_type() -> None:
    numbers = {"v": {"gte": 0}}
    assert not passes(numbers, {"v": True})
    assert not passes(numbers, {"v": "5"})
    assert not passes(numbers, {"v": "2019-05-01"})
    dates = {"v": {"gte": "2000-01-01"}}
    assert not passes(dates, {"v": 2019})
    assert not passes(dates, {"v": "not a date"})
    assert not passes(dates, {"v": True})
    assert passes(dates, {"v": "2019-05-01"})


def test_date_ranges_compare_instants_across_forms_and_offsets() -> None:
    raw = {"published": {"gte": "2019-05-01", "lt": "2019-05-02T00:00:00+02:00"}}
    assert passes(raw, {"published": "2019-05-01"})
    assert passes(raw, {"published": "2019-05-01T00:00:00Z"})
    assert not passes(raw, {"published": "2019-04-30T23:59:59Z"})
    # 2019-05-01T23:00+02:00 is 21:00 UTC, before the upper bound of 22:00 UTC.
    assert passes(raw, {"published": "2019-05-01T23:00+02:00"})
    assert not passes(raw, {"published": "2019-05-01T22:00:00Z"})
    assert passes(raw, {"published": "2019-05-01 21:59:59.999999"})
    # Naive date-times are UTC: 01:00 on the 1st, not 01:00 somewhere behind UTC.
    assert passes({"published": {"lte": "2019-05-01T01:00"}}, {"published": "2019-05-01T01:00Z"})
    assert not passes(
        {"published": {"lte": "2019-05-01T01:00"}}, {"published": "2019-05-01T01:00-01:00"}
    )


def test_gt_with_gte_keeps_the_tighter_bound() -> None:
    both = parsed({"n": {"gte": 5, "gt": 5}})
    assert both == parsed({"n": {"gt": 5}})
    assert not both.matches("d", {"n": 5})
    assert parsed({"n": {"gte": 7, "gt": 5}}) == parsed({"n": {"gte": 7}})
    assert parsed({"n": {"lt": 3, "lte": 3}}) == parsed({"n": {"lt": 3}})
    assert parsed({"n": {"lte": 1, "lt": 3}}) == parsed({"n": {"lte": 1}})
    dates = parsed({"d": {"gt": "2019-01-01", "gte": "2019-01-01T00:00Z"}})
    assert not dates.matches("x", {"d": "2019-01-01"})


def test_an_empty_range_is_allowed_and_matches_nothing() -> None:
    empty = parsed({"n": {"gt": 10, "lt": 5}})
    assert not any(empty.matches("d", {"n": value}) for value in (0, 5, 7, 10, 11))
    touching = parsed({"n": {"gte": 5, "lt": 5}})
    assert not touching.matches("d", {"n": 5})
    assert parsed({"n": {"gte": 5, "lte": 5}}).matches("d", {"n": 5})


def test_eq_with_in_needs_both() -> None:
    both = parsed({"s": {"eq": "a", "in": ["a", "b"]}})
    assert both == parsed({"s": "a"})
    assert not both.matches("d", {"s": "b"})
    never = parsed({"s": {"eq": "c", "in": ["a", "b"]}})
    assert not any(never.matches("d", {"s": value}) for value in ("a", "b", "c"))


def test_eq_with_a_range_needs_both() -> None:
    raw = {"n": {"in": [1, 5, 9], "gt": 4}}
    assert [passes(raw, {"n": value}) for value in (1, 5, 9, 6)] == [False, True, True, False]


def test_doc_id_is_the_document_id_not_metadata() -> None:
    raw = {"doc_id": ["a.txt", "b.txt"]}
    assert passes(raw, {}, doc_id="a.txt")
    assert not passes(raw, {}, doc_id="c.txt")
    # A stray doc_id in metadata (validated metadata never has one) is not consulted.
    assert not passes(raw, {"doc_id": "a.txt"}, doc_id="c.txt")


def test_with_doc_ids_ands_a_doc_id_condition() -> None:
    base = parsed({"section": "world"})
    narrowed = base.with_doc_ids(["a", "b"])
    assert narrowed == parsed({"section": "world", "doc_id": ["a", "b"]})
    assert narrowed.matches("a", {"section": "world"})
    assert not narrowed.matches("c", {"section": "world"})
    assert not narrowed.matches("a", {"section": "sport"})
    assert base.matches("c", {"section": "world"})  # the original is unchanged


def test_with_doc_ids_intersects_an_existing_doc_id_condition() -> None:
    base = parsed({"doc_id": ["a", "b"]})
    assert base.with_doc_ids({"b", "c"}) == parsed({"doc_id": "b"})
    nothing = base.with_doc_ids(["c"])
    assert not any(nothing.matches(doc_id, {}) for doc_id in ("a", "b", "c"))
    assert parse_filter(nothing.to_json()) == nothing


def test_with_doc_ids_checks_the_ids() -> None:
    base = parsed({"x": 1})
    with pytest.raises(FilterError, match="'doc_id': 'in' needs 1 to 1000 values"):
        base.with_doc_ids([])
    with pytest.raises(FilterError, match="'doc_id': 'in' needs 1 to 1000 values"):
        base.with_doc_ids([str(i) for i in range(1001)])
    with pytest.raises(FilterError, match="'doc_id': document ids are strings"):
        base.with_doc_ids([1])  # type: ignore[list-item]
    with pytest.raises(FilterError, match="at most 32 fields, not 33"):
        parsed({f"k{i}": i for i in range(32)}).with_doc_ids(["a"])


def test_of_doc_ids() -> None:
    only = Filter.of_doc_ids(["a"])
    assert only == parsed({"doc_id": "a"})
    assert only.matches("a", {})
    assert not only.matches("b", {})


def test_canonical_json_is_sorted_operator_objects() -> None:
    raw = {
        "year": {"lt": 2021, "gte": 2019, "gt": 2018},
        "section": ["world", "sport", 3, True, "world"],
        "doc_id": "a.txt",
        "published": {"gt": "2019-05-01T10:00+02:00"},
        "flag": False,
    }
    canonical = parsed(raw).to_json()
    assert canonical == {
        "doc_id": {"eq": "a.txt"},
        "flag": {"eq": False},
        "published": {"gt": "2019-05-01T10:00+02:00"},
        "section": {"in": [True, 3, "sport", "world"]},
        "year": {"gte": 2019, "lt": 2021},
    }
    assert list(canonical) == sorted(canonical)
    assert json.loads(json.dumps(canonical)) == canonical  # plain JSON values only


def test_canonical_json_round_trips() -> None:
    for raw in [
        {"s": "a"},
        {"n": [2, 1.5, -3]},
        {"b": [True, False]},
        {"n": {"gt": 1, "lte": 2.5}},
        {"d": {"gte": "2019-05-01", "lt": "2019-06-01T12:00:00.5-03:00"}},
        {"s": {"eq": "a", "in": ["b"]}},  # matches nothing; still round trips
        {"doc_id": {"in": ["x", "y"]}, "n": {"eq": 1, "gte": 0}},
    ]:
        original = parsed(raw)
        again = parsed(json.loads(json.dumps(original.to_json())))
        assert again == original
        assert hash(again) == hash(original)
        assert again.to_json() == original.to_json()


def test_filters_are_hashable_cache_keys() -> None:
    cache = {parsed({"a": 1, "b": "x"}): "hit"}
    assert cache[parsed({"b": "x", "a": 1})] == "hit"
    assert parsed({"a": 1, "b": "x"}).conditions[0].field == "a"


def test_direct_construction_is_checked_and_canonical() -> None:
    first = Condition("b", any_of=OneOf.of(["x"]))
    second = Condition("a", lower=Bound(1, inclusive=True))
    assert Filter((first, second)).conditions == (second, first)
    with pytest.raises(FilterError, match="at least one condition"):
        Filter(())
    with pytest.raises(FilterError, match="'a': given twice"):
        Filter((second, second))
    with pytest.raises(FilterError, match="'a': the condition is empty"):
        Condition("a")
    with pytest.raises(FilterError, match="all numbers or all ISO dates"):
        Condition("a", lower=Bound(1, inclusive=True), upper=Bound("2019-01-01", inclusive=True))
    with pytest.raises(FilterError, match="not an ISO date"):
        Bound("soon", inclusive=True)
    with pytest.raises(FilterError, match="not a usable number"):
        Bound(True, inclusive=True)
    with pytest.raises(FilterError, match="document ids are strings"):
        Condition("doc_id", any_of=OneOf.of([1]))
    with pytest.raises(FilterError, match="only eq and in"):
        Condition("doc_id", lower=Bound(1, inclusive=True))


# Property: the canonical form always parses back to an equal filter.
_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(-(2**53), 2**53, allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
_numbers = st.one_of(
    st.integers(-1000, 1000), st.floats(-1000, 1000, allow_nan=False, allow_infinity=False)
)
_dates = st.sampled_from(["2019-05-01", "2019-05-01T10:00Z", "2020-01-01 00:00:00+05:00"])


@st.composite
def _raw_conditions(draw: st.DrawFn) -> object:
    form = draw(st.sampled_from(["scalar", "list", "operators"]))
    if form == "scalar":
        return draw(_scalars)
    if form == "list":
        return draw(st.lists(_scalars, min_size=1, max_size=5))
    bounds = draw(st.sampled_from([_numbers, _dates]))
    operators: dict[str, object] = {}
    for operator in draw(
        st.sets(st.sampled_from(["eq", "in", "gt", "gte", "lt", "lte"]), min_size=1)
    ):
        if operator == "eq":
            operators["eq"] = draw(_scalars)
        elif operator == "in":
            operators["in"] = draw(st.lists(_scalars, min_size=1, max_size=4))
        else:
            operators[operator] = draw(bounds)
    return operators


@given(st.dictionaries(st.sampled_from(["a", "b", "c_1", "D"]), _raw_conditions(), min_size=1))
def test_canonical_json_round_trips_for_any_filter(raw: dict[str, object]) -> None:
    original = parsed(raw)
    assert parsed(json.loads(json.dumps(original.to_json()))) == original


_FIELDS = st.sampled_from(["a", "b", "c_1", "D"])
_filters = st.dictionaries(_FIELDS, _raw_conditions(), min_size=1).map(parsed)
_documents = st.tuples(
    st.sampled_from(["x.txt", "y.txt"]),
    st.dictionaries(_FIELDS, _scalars | st.sampled_from(["2019-05-01", "2021-01-01T00:00:00Z"])),
)


@given(_filters, _filters, st.lists(_documents, min_size=1, max_size=8))
def test_both_passes_exactly_what_passes_each(
    first: Filter, second: Filter, documents: list[tuple[str, dict[str, MetadataValue]]]
) -> None:
    joined = both(first, second)
    assert joined is not None
    assert parsed(json.loads(json.dumps(joined.to_json()))) == joined
    for doc_id, metadata in documents:
        expected = first.matches(doc_id, metadata) and second.matches(doc_id, metadata)
        assert joined.matches(doc_id, metadata) == expected


def test_both_with_none_and_with_contradicting_ranges() -> None:
    scope = parsed({"tenant": "a"})
    assert both(None, None) is None
    assert both(scope, None) == scope
    assert both(None, scope) == scope
    assert both(scope, parsed({"tenant": "b"})) == parsed({"tenant": {"in": ["a"], "eq": "b"}})
    dated = both(parsed({"year": {"gte": 2019}}), parsed({"year": {"lt": "2020-01-01"}}))
    assert dated is not None
    assert not dated.matches("x", {"year": 2019})
    assert not dated.matches("x", {"year": "2019-06-01"})
    # A scope may take a request's filter past the 32 fields a client may send.
    wide = both(parsed({f"k{i}": i for i in range(32)}), scope)
    assert wide is not None
    assert len(wide.conditions) == 33

"""The request schemas state exactly what the service accepts (schemathesis holds us to it)."""

from __future__ import annotations

import json
import re
import sys

import pytest

from app.schemas.common import NOT_BLANK, trimmed
from app.schemas.search import SearchRequest


def test_not_blank_pattern_agrees_with_strip_over_all_of_unicode() -> None:
    pattern = re.compile(NOT_BLANK)
    disagree = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if (chr(code).strip() == "") != (pattern.search(chr(code)) is None)
    ]
    assert disagree == []


@pytest.mark.parametrize("text", ["", " ", "\x1c\u3000\n"])
def test_blank_text_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="empty or only whitespace"):
        trimmed(text)


@pytest.mark.parametrize("body", [{"query": "x", "k": True}, {"query": "x", "min_score": False}])
def test_a_boolean_is_not_a_number(body: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="valid"):
        SearchRequest.model_validate_json(json.dumps(body))


def test_offset_and_k_at_their_limits_stay_within_the_candidate_pool() -> None:
    request = SearchRequest.model_validate({"query": "x", "k": 100, "offset": 900})
    assert request.k + request.offset == 1000

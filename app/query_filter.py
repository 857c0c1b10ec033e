"""The ``filter`` query parameter of ``GET /search`` and ``GET /documents``: the JSON of a body's
``filter`` (see indexer/filters.py), in a query string."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError

from app.schemas.common import FILTER_SCHEMA
from indexer.filters import Filter, FilterError, parse_filter_json

# Declared as JSON content, so clients and fuzzers send JSON, and Swagger UI offers a JSON box.
# A route adds it with openapi_extra={"parameters": [FILTER_PARAMETER]}.
FILTER_PARAMETER: dict[str, Any] = {
    "name": "filter",
    "in": "query",
    "required": False,
    "description": "Only documents matching this filter: the JSON of POST /search's `filter`, "
    'e.g. `{"section": "world", "year": {"gte": 2019}}`.',
    "content": {
        "application/json": {
            # Swagger UI fills the box with the schema's first example: here {} (no filter),
            # not the body schema's, which would restrict every "Try it out".
            "schema": {**FILTER_SCHEMA, "examples": [{}, *FILTER_SCHEMA["examples"]]},
        }
    },
}


# DELETE /documents's: the same, required and not empty (an empty one would match everything).
REQUIRED_FILTER_PARAMETER: dict[str, Any] = {
    **FILTER_PARAMETER,
    "required": True,
    "description": "The documents to delete: those matching this filter (as in searches), "
    'e.g. `{"published": {"lt": "2019-01-01"}}`.',
    "content": {"application/json": {"schema": {**FILTER_SCHEMA, "minProperties": 1}}},
}


async def get_query_filter(request: Request) -> Filter | None:
    """The parsed ``filter`` parameter; None without one (or for ``{}``). Read here rather
    than declared as a string parameter: the schema (FILTER_PARAMETER) says it is JSON."""
    raw = request.query_params.get("filter")
    try:
        return parse_filter_json(raw) if raw else None
    except FilterError as error:
        raise _invalid("value_error", str(error), raw) from None


async def get_required_filter(
    filter: Annotated[Filter | None, Depends(get_query_filter)],
) -> Filter:
    """The ``filter`` parameter of REQUIRED_FILTER_PARAMETER: present and not empty."""
    if filter is None:
        message = "a filter with at least one condition is required: an empty one would delete "
        raise _invalid("missing", message + "every document", None)
    return filter


def _invalid(kind: str, message: str, raw: str | None) -> RequestValidationError:
    return RequestValidationError(
        [{"type": kind, "loc": ("query", "filter"), "msg": message, "input": raw}]
    )


QueryFilterDep = Annotated[Filter | None, Depends(get_query_filter)]
RequiredFilterDep = Annotated[Filter, Depends(get_required_filter)]

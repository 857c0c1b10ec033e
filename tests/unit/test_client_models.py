"""The client's models (clients/python) cannot drift from the service: every route the client
calls exists with the body, answer and query parameters it expects, and every model it reads
or sends has the properties and required fields of the service's schema, with compatible
types (a response's types accept whatever the service may send; a request's types send only
what the service accepts). The comparison itself is checked too: each kind of drift, made on a
copy of the schema, must be reported."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.main import create_app
from app.settings import Settings
from semantic_search_client.endpoints import ENDPOINTS
from tests.utils.fakes import HashingEmbedder

Schema = dict[str, Any]
# A JSON Schema reduced to what a value can be: ("type", "integer"), ("string", "date-time"),
# ("const", "hybrid"), ("array", item kinds), ("tuple", (item kinds, ...)), ("object", value
# kinds or None for any), ("model", name), ("any",).
Kind = tuple[Any, ...]
REF_PREFIX = "#/components/schemas/"


@dataclass(frozen=True)
class Route:
    """A route as the client calls it: its request and response models' names."""

    method: str
    path: str
    request: str | None
    response: str | None
    query: tuple[str, ...]


def client_routes() -> list[Route]:
    def name(model: type[BaseModel] | None) -> str | None:
        return None if model is None else model.__name__

    return [Route(e.method, e.path, name(e.request), name(e.response), e.query) for e in ENDPOINTS]


def client_schemas() -> dict[str, Schema]:
    """The JSON schemas of every client model, by name: requests as the client sends them
    (serialization), responses as it reads them (validation)."""
    requests = {e.request for e in ENDPOINTS if e.request is not None}
    responses = {e.response for e in ENDPOINTS if e.response is not None}
    _, top = models_json_schema(
        [(m, "serialization") for m in requests] + [(m, "validation") for m in responses],
        ref_template=REF_PREFIX + "{model}",
    )
    definitions: dict[str, Schema] = top["$defs"]
    return definitions


@pytest.fixture(scope="module")
def openapi() -> Schema:
    settings = Settings(index_dir=Path("unused-index"), model=HashingEmbedder.model_name)
    schema: Schema = create_app(settings, HashingEmbedder).openapi()
    return schema


def model_name(reference: str) -> str:
    """A component's name without FastAPI's -Input/-Output suffix (a model used both ways)."""
    name = reference.removeprefix(REF_PREFIX)
    for suffix in ("-Input", "-Output"):
        name = name.removesuffix(suffix)
    return name


def kinds(schema: Schema) -> frozenset[Kind]:
    if "$ref" in schema:
        return frozenset({("model", model_name(schema["$ref"]))})
    for union in ("anyOf", "oneOf"):
        if union in schema:
            return frozenset().union(*(kinds(option) for option in schema[union]))
    if len(schema.get("allOf", ())) == 1:
        return kinds(schema["allOf"][0])
    if "const" in schema:
        return frozenset({("const", schema["const"])})
    if "enum" in schema:
        return frozenset(("const", value) for value in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return frozenset().union(*(kinds({**schema, "type": one}) for one in kind))
    if kind == "array":
        if "prefixItems" in schema:
            return frozenset({("tuple", tuple(kinds(item) for item in schema["prefixItems"]))})
        items = schema.get("items")
        return frozenset({("array", kinds(items) if items else None)})
    if kind == "object":
        values = schema.get("additionalProperties")
        typed = isinstance(values, dict) and not schema.get("properties")
        return frozenset({("object", kinds(values) if typed else None)})
    if kind == "string" and "format" in schema:
        return frozenset({("string", schema["format"])})
    if kind is None:
        return frozenset({("any",)})
    return frozenset({("type", kind)})


JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


def fits(kind: Kind, accepted: frozenset[Kind]) -> bool:
    """Whether every value of ``kind`` is one that ``accepted`` allows."""
    if kind in accepted or ("any",) in accepted:
        return True
    tag = kind[0]
    if tag == "const":
        return fits(("type", JSON_TYPES[type(kind[1])]), accepted)
    if kind == ("type", "integer"):
        return ("type", "number") in accepted
    if tag == "string":
        return ("type", "string") in accepted
    if tag in ("array", "tuple"):
        items = kind[1] if tag == "array" else frozenset().union(*kind[1])
        return ("array", None) in accepted or any(
            other[0] == "array"
            and other[1] is not None
            and items is not None
            and all(fits(item, other[1]) for item in items)
            for other in accepted
        )
    if tag == "object":
        return ("object", None) in accepted or any(
            other[0] == "object"
            and other[1] is not None
            and kind[1] is not None
            and all(fits(value, other[1]) for value in kind[1])
            for other in accepted
        )
    if tag == "model":
        return ("object", None) in accepted
    return False


def describe(found: Iterable[Kind]) -> str:
    return " | ".join(sorted(map(repr, found)))


def model_drift(name: str, server: Schema, client: Schema, sent: bool) -> list[str]:
    """How one client model differs from the service's: properties, required fields, and
    types (``sent``: a request, whose values the service must accept; otherwise a response,
    whose values the client must accept)."""
    problems = []
    server_fields, client_fields = server.get("properties", {}), client.get("properties", {})
    for field in sorted(set(server_fields) - set(client_fields)):
        problems.append(f"{name}.{field}: in the service's schema, not in the client's model")
    for field in sorted(set(client_fields) - set(server_fields)):
        problems.append(f"{name}.{field}: in the client's model, not in the service's schema")
    server_required, client_required = (
        set(server.get("required", ())),
        set(client.get("required", ())),
    )
    if server_required != client_required:
        problems.append(
            f"{name}: required {sorted(server_required)} in the service, "
            f"{sorted(client_required)} in the client"
        )
    for field in sorted(set(server_fields) & set(client_fields)):
        server_kinds, client_kinds = kinds(server_fields[field]), kinds(client_fields[field])
        given, taken = (client_kinds, server_kinds) if sent else (server_kinds, client_kinds)
        misfits = [kind for kind in given if not fits(kind, taken)]
        if misfits:
            who = "the service refuses" if sent else "the client cannot read"
            problems.append(
                f"{name}.{field}: {who} {describe(misfits)} (service: {describe(server_kinds)}; "
                f"client: {describe(client_kinds)})"
            )
    return problems


def referenced(schema: Schema) -> set[str]:
    """The names of the models a schema refers to, directly."""
    found: set[str] = set()
    if isinstance(schema, dict):
        if isinstance(schema.get("$ref"), str):
            found.add(model_name(schema["$ref"]))
        for value in schema.values():
            found |= referenced(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= referenced(value)
    return found


def json_schema(content: Schema | None) -> Schema | None:
    if content is None:
        return None
    schema: Schema | None = content.get("content", {}).get("application/json", {}).get("schema")
    return schema


def route_drift(route: Route, openapi: Schema) -> list[str]:
    """How the service's operation differs from what the client sends and expects."""
    where = f"{route.method} {route.path}"
    operation = openapi["paths"].get(route.path, {}).get(route.method.lower())
    if operation is None:
        return [f"{where}: no such operation in the service's schema"]
    problems = []
    body = json_schema(operation.get("requestBody"))
    request = model_name(body["$ref"]) if body and "$ref" in body else None
    if request != route.request:
        problems.append(f"{where}: the service takes {request}, the client sends {route.request}")
    answers = {
        model_name(schema["$ref"]) if schema and "$ref" in schema else None
        for status, response in operation["responses"].items()
        if status.startswith("2")
        for schema in [json_schema(response)]
    }
    if answers != {route.response}:
        problems.append(
            f"{where}: the service answers {sorted(map(str, answers))}, "
            f"the client reads {route.response}"
        )
    parameters = {p["name"]: p for p in operation.get("parameters", ()) if p["in"] == "query"}
    for name in route.query:
        if name not in parameters:
            problems.append(f"{where}: the client sends ?{name}, which the service does not take")
    for name, parameter in parameters.items():
        if parameter.get("required") and name not in route.query:
            problems.append(f"{where}: the service requires ?{name}, which the client never sends")
    return problems


def drift(openapi: Schema, client: dict[str, Schema], routes: list[Route]) -> list[str]:
    """Every difference between the client and the service's schema."""
    problems = [problem for route in routes for problem in route_drift(route, openapi)]
    components: dict[str, Schema] = {
        model_name(name): schema for name, schema in openapi["components"]["schemas"].items()
    }
    # Each model the client sends or reads, with every model nested in it, in that direction.
    pending = [(r.request, True) for r in routes if r.request] + [
        (r.response, False) for r in routes if r.response
    ]
    seen: set[tuple[str, bool]] = set()
    while pending:
        name, sent = pending.pop()
        if (name, sent) in seen:
            continue
        seen.add((name, sent))
        if name not in client:
            problems.append(f"{name}: the client has no model of this name")
            continue
        if name not in components:
            problems.append(f"{name}: the service's schema has no model of this name")
            continue
        problems += model_drift(name, components[name], client[name], sent)
        nested = referenced(components[name]) | referenced(client[name])
        pending += [(other, sent) for other in sorted(nested)]
    return problems


def test_the_client_matches_the_service(openapi: Schema) -> None:
    assert drift(openapi, client_schemas(), client_routes()) == []


def test_every_model_and_route_is_compared(openapi: Schema) -> None:
    """The comparison reaches the nested models, and every route the client calls."""
    routes = client_routes()
    assert {(r.method, r.path) for r in routes} >= {
        ("POST", "/search"),
        ("POST", "/search/batch"),
        ("GET", "/documents"),
        ("POST", "/documents"),
        ("DELETE", "/documents"),
        ("GET", "/documents/{doc_id}"),
        ("PUT", "/documents/{doc_id}"),
        ("DELETE", "/documents/{doc_id}"),
        ("GET", "/info"),
        ("GET", "/ready"),
    }
    client = client_schemas()
    assert {"SearchResult", "Scores", "Ranks", "DocumentSummary", "PassageSpan"} <= set(client)
    assert {"BulkItem", "BulkDocument", "SearchRequest"} <= set(client)


def _server(
    path: tuple[str, ...], change: Callable[[Any], object]
) -> Callable[[Schema, Schema], object]:
    def mutate(openapi: Schema, client: Schema) -> object:
        del client
        node = openapi
        for key in path:
            node = node[key]
        return change(node)

    return mutate


def _client(name: str, change: Callable[[Schema], object]) -> Callable[[Schema, Schema], object]:
    def mutate(openapi: Schema, client: Schema) -> object:
        del openapi
        return change(client[name])

    return mutate


RESULT = ("components", "schemas", "SearchResult")
REQUEST = ("components", "schemas", "SearchRequest")
DRIFTS: dict[str, tuple[Callable[[Schema, Schema], object], str]] = {
    "a field added to the service": (
        _server((*RESULT, "properties"), lambda p: p.update(explain={"type": "string"})),
        "SearchResult.explain: in the service's schema",
    ),
    "a field removed from the service": (
        _server((*RESULT, "properties"), lambda p: p.pop("other_matches")),
        "SearchResult.other_matches: in the client's model",
    ),
    "a field renamed in the service": (
        _server((*RESULT, "properties"), lambda p: p.update(relevance=p.pop("score"))),
        "SearchResult.relevance: in the service's schema",
    ),
    "a field added to the client": (
        _client("SearchResult", lambda s: s["properties"].update(snippet={"type": "string"})),
        "SearchResult.snippet: in the client's model",
    ),
    "a field made required": (
        _server(RESULT, lambda s: s["required"].append("other_matches")),
        "SearchResult: required",
    ),
    "a nested model's type changed": (
        _server(
            ("components", "schemas", "Scores", "properties", "semantic"),
            lambda s: s["anyOf"].insert(0, {"type": "string"}),
        ),
        "Scores.semantic: the client cannot read",
    ),
    "a response type widened": (
        _server((*RESULT, "properties", "chunk_id"), lambda s: s.update(type="string")),
        "SearchResult.chunk_id: the client cannot read",
    ),
    "a request type narrowed": (
        _server((*REQUEST, "properties", "mode"), lambda s: s.update(enum=["hybrid", "semantic"])),
        "SearchRequest.mode: the service refuses",
    ),
    "a route moved": (
        _server(("paths",), lambda p: p.update({"/v2/search": p.pop("/search")})),
        "POST /search: no such operation",
    ),
    "a query parameter renamed": (
        _server(
            ("paths", "/documents", "post", "parameters"),
            lambda ps: [p.update(name="sync") for p in ps if p["name"] == "refresh"],
        ),
        "POST /documents: the client sends ?refresh",
    ),
    "another response model": (
        _server(
            ("paths", "/info", "get", "responses", "200", "content", "application/json", "schema"),
            lambda s: s.update({"$ref": REF_PREFIX + "Health"}),
        ),
        "GET /info: the service answers ['Health']",
    ),
}


@pytest.mark.parametrize("change", DRIFTS)
def test_a_drift_is_reported(openapi: Schema, change: str) -> None:
    mutate, expected = DRIFTS[change]
    server, client = copy.deepcopy(openapi), client_schemas()
    mutate(server, client)
    problems = drift(server, client, client_routes())
    assert any(expected in problem for problem in problems), json.dumps(problems, indent=1)

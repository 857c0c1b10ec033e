"""OpenTelemetry: a span per request, the core's spans under it; nothing unless configured."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.test.globals_test import reset_trace_globals

from app.logs import add_context_filters, json_formatter
from app.main import create_app
from app.settings import Settings
from app.tracing import exporter_names
from tests.utils.api import WRITE_HEADERS, article, wait_until_ready
from tests.utils.fakes import HashingEmbedder

pytestmark = pytest.mark.api

ROOT = Path(__file__).resolve().parents[2]


class _Recorder(InMemorySpanExporter):
    """Keeps spans only while a test listens: the core's tracers, once they found the
    provider, keep using it for the rest of the session."""

    listening = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return super().export(spans) if self.listening else SpanExportResult.SUCCESS


_RECORDER = _Recorder()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_RECORDER))


@pytest.fixture
def spans() -> Iterator[_Recorder]:
    """The global tracer provider, recording in memory, for this test only."""
    reset_trace_globals()
    trace.set_tracer_provider(_PROVIDER)
    _RECORDER.clear()
    _RECORDER.listening = True
    try:
        yield _RECORDER
    finally:
        _RECORDER.listening = False
        _RECORDER.clear()
        reset_trace_globals()


def _client(settings: Settings, **headers: str) -> TestClient:
    return TestClient(create_app(settings, HashingEmbedder), headers=headers)


def _by_name(spans: Sequence[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def _request_span(spans: Sequence[ReadableSpan], route: str) -> ReadableSpan:
    servers = [s for s in spans if s.kind == trace.SpanKind.SERVER]
    assert len(servers) == 1, [s.name for s in servers]
    assert servers[0].name == route
    return servers[0]


def _parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def test_a_search_is_one_request_span_with_the_core_spans_under_it(
    settings: Settings, spans: _Recorder
) -> None:
    with _client(settings) as client:
        wait_until_ready(client)
        spans.clear()
        response = client.get("/search", params={"q": "war crimes", "mode": "hybrid"})
        assert response.status_code == 200
    finished = spans.get_finished_spans()
    request = _request_span(finished, "GET /search")
    named = _by_name(finished)
    for name in ("search.encode_queries", "search.vector", "search.keyword", "search.fuse"):
        assert name in named, sorted(named)
        assert _parent_of(named[name]) == request.context.span_id
        assert named[name].context.trace_id == request.context.trace_id
    # The batching encoder's wait is inside the encoding span.
    assert (
        _parent_of(named["query_encoder.encode"]) == named["search.encode_queries"].context.span_id
    )


def test_a_put_has_write_spans(live_settings: Settings, spans: _Recorder) -> None:
    with _client(live_settings, **WRITE_HEADERS) as client:
        wait_until_ready(client)
        spans.clear()
        response = client.put(
            "/documents/traced",
            json=article("Traced", "Some text."),
            params={"refresh": "wait_for"},
        )
        assert response.status_code == 201, response.text
        assert client.delete("/documents/traced").status_code == 204
    finished = spans.get_finished_spans()
    named = _by_name(finished)
    put = next(s for s in finished if s.name.startswith("PUT "))
    for name in ("write.prepare", "store.put", "store.wait_for"):
        assert _parent_of(named[name]) == put.context.span_id
    delete = next(s for s in finished if s.name.startswith("DELETE "))
    assert _parent_of(named["store.delete"]) == delete.context.span_id


def test_the_json_log_line_has_the_trace_id(settings: Settings, spans: _Recorder) -> None:
    stream = io.StringIO()
    handler = add_context_filters(logging.StreamHandler(stream))
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("app.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with _client(settings.model_copy(update={"log_format": "json"})) as client:
            wait_until_ready(client)
            spans.clear()
            client.get("/search", params={"q": "war"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    request = _request_span(spans.get_finished_spans(), "GET /search")
    assert [line["trace_id"] for line in lines if line["path"] == "/search"] == [
        trace.format_trace_id(request.context.trace_id)
    ]


def test_without_otel_configuration_no_tracer_provider_is_installed(settings: Settings) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    script = (
        "from opentelemetry import trace\n"
        "from app.main import create_app\n"
        "from app.settings import Settings\n"
        f"app = create_app(Settings(index_dir={str(settings.index_dir)!r}))\n"
        "assert type(trace.get_tracer_provider()).__name__ == 'ProxyTracerProvider'\n"
        "assert not getattr(app, '_is_instrumented_by_opentelemetry', False)\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environ, check=True, timeout=60)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "console,otlp"}, ["console", "otlp"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, []),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, []),
    ],
)
def test_when_tracing_is_configured(environ: dict[str, str], expected: list[str]) -> None:
    assert exporter_names(environ) == expected

"""OpenTelemetry tracing: off unless the standard ``OTEL_*`` variables configure an exporter.

"Configured" means ``OTEL_TRACES_EXPORTER`` names an exporter other than ``none``, or an OTLP
endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``),
and ``OTEL_SDK_DISABLED`` is not true. Exporters are found by name through the SDK's entry
points, as ``opentelemetry-instrument`` finds them (``console`` ships with the SDK; ``otlp``
needs an exporter package). A tracer provider installed before (by ``opentelemetry-instrument``
or a test) is used as it is.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from importlib.metadata import entry_points

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

logger = logging.getLogger("app")

SERVICE_NAME = "semantic-search"
# Probes and scrapes every few seconds would drown the traces that matter.
_UNTRACED_URLS = "/health$,/ready$,/metrics$"


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The span exporters the environment asks for; empty when tracing is off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if names:
        return [] if names == ["none"] else [n for n in names if n != "none"]
    if environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        return ["otlp"]
    return []


def _sdk_provider_installed() -> bool:
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def _exporter(name: str) -> SpanExporter | None:
    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        logger.warning(
            "OTEL_TRACES_EXPORTER names %r, which is not installed here: its spans are dropped "
            "(install an exporter package, e.g. opentelemetry-exporter-otlp)",
            name,
        )
        return None
    exporter: SpanExporter = next(iter(found)).load()()
    return exporter


def install_tracer_provider(environ: Mapping[str, str]) -> bool:
    """Install the global tracer provider the environment configures, once per process.

    True if requests should be traced (a provider is installed, now or before)."""
    if _sdk_provider_installed():
        return True
    names = exporter_names(environ)
    if not names:
        return False
    resource = Resource.create()  # reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = Resource.create({"service.name": SERVICE_NAME})
    provider = TracerProvider(resource=resource)
    for name in names:
        exporter = _exporter(name)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True


def instrument(app: FastAPI, environ: Mapping[str, str] | None = None) -> bool:
    """One span per request (and the core's spans under it), if tracing is configured."""
    if not install_tracer_provider(os.environ if environ is None else environ):
        return False
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=_UNTRACED_URLS, exclude_spans=["receive", "send"]
    )
    return True

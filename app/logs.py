"""Request ids and the log format: text (uvicorn's, as before) or one JSON object a line."""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Literal

from asgi_correlation_id import CorrelationIdFilter
from asgi_correlation_id.context import correlation_id
from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LogFormat = Literal["text", "json"]
REQUEST_ID_HEADER = "X-Request-ID"
# What a client may send as its request id; anything else (a 10 KB header, control
# characters that could forge log lines) is replaced by a generated one.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")

access_logger = logging.getLogger("app.access")


def valid_request_id(value: str) -> bool:
    return _SAFE_REQUEST_ID.fullmatch(value) is not None


def current_request_id() -> str | None:
    return correlation_id.get()


class TraceIdFilter(logging.Filter):
    """Adds ``trace_id``: the current span's, when tracing is on (else nothing)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = trace.format_trace_id(context.trace_id)
        return True


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        # uvicorn's copy of its message with terminal colours.
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        rename_fields={
            "asctime": "time",
            "levelname": "level",
            "name": "logger",
            "correlation_id": "request_id",
        },
    )


def request_id_filter() -> logging.Filter:
    return CorrelationIdFilter(default_value=None)


def add_context_filters(handler: logging.Handler) -> logging.Handler:
    handler.addFilter(request_id_filter())
    handler.addFilter(TraceIdFilter())
    return handler


def log_config(base: dict[str, Any], level: str, log_format: LogFormat) -> dict[str, Any]:
    """``base`` (uvicorn's logging config) with the application's loggers, and in json mode
    every line as JSON and the service's own request line in place of uvicorn's access log."""
    config = dict(base)
    config["loggers"] = dict(base["loggers"])
    config["loggers"]["app"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    config["loggers"]["indexer"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    if log_format == "json":
        config["filters"] = {
            "request_id": {"()": "app.logs.request_id_filter"},
            "trace_id": {"()": "app.logs.TraceIdFilter"},
        }
        config["formatters"] = {**base["formatters"], "json": {"()": "app.logs.json_formatter"}}
        config["handlers"] = {
            "default": {
                "formatter": "json",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "filters": ["request_id", "trace_id"],
            }
        }
        config["loggers"]["uvicorn"] = {
            "handlers": ["default"],
            "level": level.upper(),
            "propagate": False,
        }
        config["loggers"]["uvicorn.access"] = {"handlers": [], "propagate": False}
        # Libraries' own warnings (asgi-correlation-id's, OpenTelemetry's) as JSON too.
        config["root"] = {"handlers": ["default"], "level": "WARNING"}
    return config


class AccessLogMiddleware:
    """One ``app.access`` line per request, with its request id (and trace id)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the application raises before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client")
            duration_ms = round((time.perf_counter() - started) * 1000, 3)
            access_logger.info(
                "%s %s %d %.1f ms",
                scope["method"],
                scope["path"],
                status,
                duration_ms,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": duration_ms,
                    "client": f"{client[0]}:{client[1]}" if client else None,
                },
            )

"""``python -m app`` with SEARCH_LOG_FORMAT=json and tracing on: what its log really holds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.utils.processes import running_service

pytestmark = pytest.mark.e2e


def test_json_logs_from_the_real_process(
    real_index_dir: Path, onnx_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "service.log"
    # An OTLP exporter need not be installed: tracing is on (spans and trace ids) either way.
    with running_service(
        real_index_dir, onnx_dir, log, SEARCH_LOG_FORMAT="json", OTEL_TRACES_EXPORTER="otlp"
    ) as base:
        response = httpx.get(
            f"{base}/search", params={"q": "war"}, headers={"X-Request-ID": "e2e-1"}
        )
        assert response.status_code == 200
        assert response.headers["X-Request-ID"] == "e2e-1"
        forged = httpx.get(f"{base}/search", params={"q": "war"}, headers={"X-Request-ID": "a b"})
        replaced = forged.headers["X-Request-ID"]
        assert replaced != "a b"

    lines = [json.loads(line) for line in log.read_text().splitlines()]  # every line is JSON
    searches = [line for line in lines if line.get("path") == "/search"]
    assert [line["request_id"] for line in searches] == ["e2e-1", replaced]
    for line in searches:
        assert line["logger"] == "app.access"
        assert line["method"] == "GET"
        assert line["status"] == 200
        assert line["duration_ms"] > 0
        assert line["client"].startswith("127.0.0.1:")
        assert re.fullmatch(r"[0-9a-f]{32}", line["trace_id"])
    assert searches[0]["trace_id"] != searches[1]["trace_id"]
    # uvicorn's own access line is off: one line per request.
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]
    assert any(line["message"].startswith("Application startup complete") for line in lines)
    assert not [line for line in lines if "color_message" in line]

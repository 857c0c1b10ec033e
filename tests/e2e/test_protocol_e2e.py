"""What uvicorn refuses before the application sees it is JSON too (app/protocol.py)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

from tests.utils.processes import running_service


def _raw(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as is (clients refuse to send what is tested here); the answer."""
    where = urlsplit(url)
    with socket.create_connection((where.hostname, where.port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


def test_unparseable_requests_and_huge_urls_get_a_json_400(
    real_index_dir: Path, onnx_dir: Path, tmp_path: Path
) -> None:
    def get(target: str) -> bytes:
        return f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()

    with running_service(real_index_dir, onnx_dir, tmp_path / "service.log") as url:
        huge = _raw(url, get("/search?q=x&source=" + "a" * 70_000))
        fine = _raw(url, get("/search?q=x&source=" + "a" * 60_000))
        garbled = _raw(url, b"GET /search?q=x HTTP/1.1\r\nHost x\r\n\r\n")
    status, headers, body = huge
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert "POST /search" in json.loads(body)["detail"]
    assert fine[0] == 200
    status, headers, body = garbled
    assert (status, headers["content-type"]) == (400, "application/json")
    assert json.loads(body) == {"detail": "the request could not be parsed as HTTP"}

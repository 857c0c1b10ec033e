"""uvicorn's HTTP protocol, with the one error it answers by itself in JSON too.

uvicorn refuses a request it cannot parse before the application sees it, with a plain-text
400: a malformed request, or a URL over 64 KiB (httptools keeps URL offsets in 16 bits). Such
URLs are schema-valid (a GET /search with a long filter), so the answer is the service's usual
JSON error, and says what to do instead.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_URL_BYTES = 65_535


class JsonErrorsProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        detail = "the request could not be parsed as HTTP"
        if len(getattr(self, "url", b"")) > MAX_URL_BYTES:
            detail = "the URL is over 64 KiB; send long filters in the body of POST /search"
        body = json.dumps({"detail": detail}).encode()
        content = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()

"""An HTTP server on loopback that answers from a script, in a thread: for what a real service
will not do on demand (a 503 with Retry-After, a 429, an answer that never comes). It records
when each request arrived, so a test can check how a client waited between attempts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Answer:
    status: int
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)
    # Hold the answer until the test ends (the server's `release`): a request that times out.
    hang: bool = False


@dataclass
class Script:
    """The answers to give, in order (a request past the end gets a 500), and what came."""

    answers: list[Answer]
    base_url: str = ""
    arrivals: list[float] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self, method: str, path: str) -> Answer:
        with self.lock:
            self.arrivals.append(time.monotonic())
            self.paths.append(f"{method} {path}")
            index = len(self.arrivals) - 1
        if index < len(self.answers):
            return self.answers[index]
        return Answer(500, {"detail": "the script has no more answers"})

    @property
    def gaps(self) -> list[float]:
        """Seconds between consecutive requests."""
        return [
            later - earlier
            for earlier, later in zip(self.arrivals, self.arrivals[1:], strict=False)
        ]


@contextmanager
def scripted_server(*answers: Answer) -> Iterator[Script]:
    script = Script(list(answers))

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            reply = script.next(self.command, self.path)
            if reply.hang:
                script.release.wait(60)
            payload = b"" if reply.body is None else json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if payload:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting

        do_GET = do_POST = do_PUT = do_DELETE = answer  # noqa: N815 (http.server's names)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    script.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="scripted-server", daemon=True)
    thread.start()
    try:
        yield script
    finally:
        script.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)

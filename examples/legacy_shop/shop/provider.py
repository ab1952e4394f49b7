"""A stand-in for the payment, shipping and mail providers: a local HTTP server that fails.

``serve(port, failure_rate)`` answers ``POST /charge``, ``POST /ship`` and
``POST /mail`` with JSON, and fails a given share of requests with HTTP 503 so
the retry code has something to do. Every request it answers successfully is
appended to ``$PROVIDER_LOG`` (one JSON line), which is how the walk-through
counts charges: a charge made twice is a customer billed twice.
"""

from __future__ import annotations

import json
import os
import random
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    server: _ProviderServer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        if self.server.rng.random() < self.server.failure_rate:
            self.send_response(503)
            self.end_headers()
            return
        key = self.headers.get("Idempotency-Key")
        with self.server.lock:
            if key and key in self.server.seen:
                answer = self.server.seen[key]
            else:
                answer = {"id": uuid.uuid4().hex[:12], "path": self.path, "request": body}
                if key:
                    self.server.seen[key] = answer
                if self.server.log_path:
                    with open(self.server.log_path, "a") as log:
                        log.write(json.dumps(answer) + "\n")
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


class _ProviderServer(ThreadingHTTPServer):
    def __init__(self, port: int, failure_rate: float, seed: int | None) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.failure_rate = failure_rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.seen: dict[str, dict[str, object]] = {}
        self.log_path = os.environ.get("PROVIDER_LOG")


def serve(port: int = 0, failure_rate: float = 0.3, seed: int | None = None) -> _ProviderServer:
    """Start the provider in a background thread; ``server.server_address[1]`` is its port."""
    server = _ProviderServer(port, failure_rate, seed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server

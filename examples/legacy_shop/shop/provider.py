"""A stand-in for the payment, shipping and mail providers: a local HTTP server that fails.

``serve(port, failure_rate)`` answers ``POST /charge``, ``POST /ship`` and
``POST /mail`` with JSON, and fails a given share of requests with HTTP 503 so
the retry code has something to do. A charge of zero cents or less is refused
with HTTP 422 (a card cannot be charged nothing). Every request it answers
successfully is appended to ``$PROVIDER_LOG`` (one JSON line), which is how the
walk-through counts charges: a charge made twice is a customer billed twice.
A request repeated with an ``Idempotency-Key`` it has answered before gets the
same answer again and is not logged again (``server.replayed`` counts them).
``latency`` makes every request take that long (``server.in_flight`` counts the
requests being answered, by path).

Run it on its own with ``python -m shop.provider [--port 8765] [--failure-rate 0.3]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    server: _ProviderServer

    def do_POST(self) -> None:
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        with server.lock:
            server.in_flight[self.path] += 1
        try:
            self._answer(body)
        finally:
            with server.lock:
                server.in_flight[self.path] -= 1

    def _answer(self, body: dict[str, object]) -> None:
        if self.server.latency:
            time.sleep(self.server.latency)
        with self.server.lock:
            failed = self.server.rng.random() < self.server.failure_rate
        if failed:
            self.send_response(503)
            self.end_headers()
            return
        amount = body.get("amount", 1)
        if self.path == "/charge" and not (isinstance(amount, int) and amount > 0):
            self.send_response(422)
            self.end_headers()
            return
        key = self.headers.get("Idempotency-Key")
        with self.server.lock:
            if key and key in self.server.seen:
                answer = self.server.seen[key]
                self.server.replayed += 1
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
    daemon_threads = True

    def __init__(
        self, port: int, failure_rate: float, seed: int | None, latency: float = 0.0
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.failure_rate = failure_rate
        self.latency = latency
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.seen: dict[str, dict[str, object]] = {}
        self.in_flight: Counter[str] = Counter()
        self.replayed = 0
        self.log_path = os.environ.get("PROVIDER_LOG")


def serve(
    port: int = 0, failure_rate: float = 0.3, seed: int | None = None, latency: float = 0.0
) -> _ProviderServer:
    """Start the provider in a background thread; ``server.server_address[1]`` is its port."""
    server = _ProviderServer(port, failure_rate, seed, latency)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="The flaky payment/shipping/mail provider.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--failure-rate", type=float, default=0.3)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    server = _ProviderServer(args.port, args.failure_rate, args.seed, args.latency)
    print(f"provider on http://127.0.0.1:{server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()

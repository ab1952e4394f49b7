"""A stand-in for the payment, shipping and mail providers: a local HTTP server that fails.

``serve(port, failure_rate)`` answers ``POST /charge``, ``POST /ship`` and
``POST /mail`` with JSON, and fails a given share of requests with HTTP 503 so
the retry code has something to do. A charge of zero cents or less is refused
with HTTP 422 (a card cannot be charged nothing). Every request it answers
successfully is appended to ``$PROVIDER_LOG`` (one JSON line), which is how the
walk-through counts charges: a charge made twice is a customer billed twice.
A request repeated with an ``Idempotency-Key`` it has answered before gets the
same answer again, and nothing is done again: its log line says ``"replay": true``
(``server.replayed`` lists those keys).

For the tests: ``latency`` delays every successful answer after the work is
done and logged; ``server.answers.clear()`` holds them back until
``server.answers.set()``; ``server.in_flight[path]`` lists the idempotency keys
of the requests done but not yet answered (the caller does not know yet that
the charge went through).

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
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    server: _ProviderServer

    def do_POST(self) -> None:
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        with server.lock:
            failed = server.rng.random() < server.failure_rate
        if failed:
            self._send(503)
            return
        amount = body.get("amount", 1)
        if self.path == "/charge" and not (isinstance(amount, int) and amount > 0):
            self._send(422)
            return
        key = self.headers.get("Idempotency-Key")
        with server.lock:
            if key and key in server.seen:
                answer = server.seen[key]
                server.replayed.append(key)
                if server.log_path:
                    with open(server.log_path, "a") as log:
                        log.write(json.dumps({**answer, "replay": True}) + "\n")
            else:
                answer = {
                    "id": uuid.uuid4().hex[:12],
                    "path": self.path,
                    "key": key,
                    "request": body,
                }
                if key:
                    server.seen[key] = answer
                if server.log_path:
                    with open(server.log_path, "a") as log:
                        log.write(json.dumps(answer) + "\n")
            server.in_flight[self.path].append(key)
        try:  # done; the answer takes a while to come back
            if server.latency:
                time.sleep(server.latency)
            server.answers.wait()
        finally:
            with server.lock:
                server.in_flight[self.path].remove(key)
        with contextlib.suppress(OSError):  # the caller may have died meanwhile
            self._send(200, json.dumps(answer).encode())

    def _send(self, status: int, data: bytes = b"") -> None:
        self.send_response(status)
        if data:
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
        self.in_flight: defaultdict[str, list[str | None]] = defaultdict(list)
        self.replayed: list[str] = []
        self.answers = threading.Event()
        self.answers.set()
        self.log_path = os.environ.get("PROVIDER_LOG")


def serve(
    port: int = 0, failure_rate: float = 0.3, seed: int | None = None, latency: float = 0.0
) -> _ProviderServer:
    """Start the provider in a background thread; ``server.server_address[1]`` is its port."""
    server = _ProviderServer(port, failure_rate, seed, latency)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def summarise(log_path: str) -> None:
    """What the provider did, from its log: requests per path, repeats, customers billed twice."""
    with open(log_path) as log:
        done = [json.loads(line) for line in log]
    replays = [e for e in done if e.get("replay")]
    done = [e for e in done if not e.get("replay")]
    paths = Counter(e["path"] for e in done)
    charges = Counter(e["request"]["order"] for e in done if e["path"] == "/charge")
    print(", ".join(f"{path} {n}" for path, n in sorted(paths.items())))
    print(f"charged orders: {len(charges)}")
    if replays:
        keys = ", ".join(f"{e['path']} {e['key']}" for e in replays)
        print(f"repeated with the same idempotency key, answered, not done again: {keys}")
    twice = sorted((order, n) for order, n in charges.items() if n > 1)
    billed = ", ".join(f"order {order} ({n} charges)" for order, n in twice)
    print(f"billed more than once: {billed or 'nobody'}")


def main() -> None:
    parser = argparse.ArgumentParser(description="The flaky payment/shipping/mail provider.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--failure-rate", type=float, default=0.3)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--summary", metavar="LOG", help="summarise a $PROVIDER_LOG and exit")
    args = parser.parse_args()
    if args.summary:
        summarise(args.summary)
        return
    server = _ProviderServer(args.port, args.failure_rate, args.seed, args.latency)
    print(f"provider on http://127.0.0.1:{server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()

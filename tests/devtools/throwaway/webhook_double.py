"""The webhook destination's double: an endpoint on loopback that takes a batch only with
the configured secret (401 otherwise) and hands over each line as it arrives."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from devtools.localstack.doubles import Running, Setup


class WebhookStandIn:
    """The endpoint, with the stand-in interface the dry run stops and fails."""

    def __init__(self, setup: Setup) -> None:
        secret = setup.environment["WEBHOOK_SECRET"]
        owner = self
        self._failures: list[int] = []
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = owner._next_failure()
                if status is None and self.headers.get("Authorization") != f"Bearer {secret}":
                    status = 401
                if status is None:
                    for line in body.decode().splitlines():
                        setup.receive_record(json.loads(line), line)
                self.send_response(status or 204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer((setup.host, setup.port), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{setup.host}:{self._server.server_port}/events"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _next_failure(self) -> int | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def fail_next_requests(self, status: int, count: int = 1) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def start(setup: Setup) -> Running:
    standin = WebhookStandIn(setup)
    return Running({"WEBHOOK_URL": standin.url}, standin=standin)

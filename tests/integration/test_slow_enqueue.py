"""An SQS that takes the message but answers after the pixel's read timeout (1.5 s).

botocore retries, so one hit becomes several messages with one event id. Shown through the
real path: the pixel's boto3 client talks to moto through a loopback proxy that forwards
each `SendMessage` at once and holds back its answer.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

import pytest

from chalicelib import runtime
from devtools.loopback import QuietServer
from tests.integration.harness import Pipeline

HIT = "event=purchase&endpoint_id=ep-1&evat_sku=A-1"
LATE_SECONDS = 2.0  # beyond the pixel's 1.5 s read timeout


class SlowSendProxy:
    """Forwards everything to moto; the answers of the next `slow` SendMessage calls come
    `LATE_SECONDS` late (the message is already on the queue by then).

    Its own threaded server, not pytest-httpserver's: while one answer is held back the
    client gives up and retries, and the retry must get through at once; pytest-httpserver
    serves one request at a time."""

    def __init__(self, upstream: str) -> None:
        self.slow = 0
        self.sends = 0
        self._lock = threading.Lock()
        target = urlsplit(upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                connection = http.client.HTTPConnection(target.netloc, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                connection.request("POST", self.path, body, headers)
                answer = connection.getresponse()
                payload = answer.read()
                if self.headers.get("X-Amz-Target") == "AmazonSQS.SendMessage" and proxy.late():
                    time.sleep(LATE_SECONDS)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.getheaders():
                        if name.lower() not in ("transfer-encoding", "connection"):
                            self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up waiting: that is the point

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def late(self) -> bool:
        with self._lock:
            self.sends += 1
            if self.slow:
                self.slow -= 1
                return True
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> SlowSendProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def slow_sqs(
    pipeline: Pipeline, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SlowSendProxy]:
    with SlowSendProxy(moto_url) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", proxy.url)
        runtime.reset()
        yield proxy


def test_one_late_answer_gives_200_two_messages_and_one_delivery(
    pipeline: Pipeline, slow_sqs: SlowSendProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    slow_sqs.slow = 1
    response = pipeline.hit(HIT)
    assert response.status == 200
    assert slow_sqs.sends == 2
    assert pipeline.queued() == 2  # one hit, two messages
    assert '"EnqueueRetriedAfterTimeout":[1.0]' in capsys.readouterr().out
    pipeline.consumer(batch_size=1).drain()  # the copies in two batches: the memory acts
    assert len(pipeline.delivered()) == 1
    assert pipeline.queued() == 0
    assert pipeline.dead_letters() == []
    assert '"DuplicatesSkipped":[1.0]' in capsys.readouterr().out


def test_only_late_answers_give_an_honest_503_and_still_one_delivery(
    pipeline: Pipeline, slow_sqs: SlowSendProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    slow_sqs.slow = 3  # ENQUEUE_ATTEMPTS is 3
    response = pipeline.hit(HIT)
    assert response.status == 503
    assert response.text.startswith("event may have been recorded")
    assert "EnqueueOutcomeUnknown" in capsys.readouterr().out
    assert pipeline.queued() == 3
    pipeline.consumer().drain()
    assert len(pipeline.delivered()) == 1
    assert pipeline.queued() == 0


def test_a_retry_of_the_503_with_the_same_event_id_is_not_delivered_twice(
    pipeline: Pipeline, slow_sqs: SlowSendProxy
) -> None:
    """docs/gtm-setup.md: a client that retries should send the same event_id."""
    slow_sqs.slow = 3
    assert pipeline.hit(HIT + "&event_id=hit-42").status == 503
    assert pipeline.hit(HIT + "&event_id=hit-42").status == 200
    pipeline.consumer().drain()
    assert pipeline.delivered() == [("purchase", "hit-42")]

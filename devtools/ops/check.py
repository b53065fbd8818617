"""`ops check`: does a deployed stage work end to end, as a browser and Pinpoint see it?

1. A test hit, sent with Chromium's image `Accept` header, must come back as a real GIF. A
   200 whose body is not a GIF means API Gateway's binary media types are wrong: browsers
   would fire the tag's failure handler although the event was queued.
2. A deliberately bad hit must come back 400 with its reason.
3. The test event must reach the destination: the consumer records it in Pinpoint, which
   creates the test endpoint, so `GetEndpoint` finding it proves the whole path (queue, event
   source mapping, consumer, permissions, project id). If the consumer rejected it instead,
   it is on the dead-letter queue with the reason, and the check says which.

The test event is `pixel_relay_check` for an endpoint `pixel-relay-check-<random>`; the check
deletes that endpoint afterwards. The event itself stays in the project's analytics.
"""

from __future__ import annotations

import contextlib
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Final, Protocol

from botocore.exceptions import ClientError

from devtools.ops.dlq.scan import Scanner

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

CHECK_EVENT: Final = "pixel_relay_check"
CHROMIUM_IMAGE_ACCEPT: Final = (
    "image/jxl,image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
)
# The check plays a browser's image request: a tool's own User-Agent (Python-urllib) is on
# the crawler list, and a stage that filters bots would drop the test hit as one.
CHROMIUM_USER_AGENT: Final = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/156.0.0.0 Safari/537.36 pixel-relay-check"
)
GIF_MAGIC: Final = (b"GIF87a", b"GIF89a")
HTTP_TIMEOUT_SECONDS: Final = 15
DEAD_LETTER_HOLD_SECONDS: Final = 30

_opener = urllib.request.build_opener()


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def get(url: str, referer: str | None = None) -> Answer:
    """GET as Chromium requests an image (for a page at `referer`, if given)."""
    headers = {
        "Accept": CHROMIUM_IMAGE_ACCEPT,
        "User-Agent": CHROMIUM_USER_AGENT,
        "Sec-Fetch-Dest": "image",
    }
    if referer:
        headers["Referer"] = referer
    request = urllib.request.Request(url, headers=headers)
    try:
        with _opener.open(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            return Answer(
                response.status, response.headers.get("Content-Type", ""), response.read()
            )
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers.get("Content-Type", ""), error.read())


class DeliveryProbe(Protocol):
    """Whether the destination has the test event's endpoint; and removing it after."""

    def delivered(self, endpoint_id: str) -> bool: ...

    def cleanup(self, endpoint_id: str) -> None: ...


class PinpointProbe:
    """PutEvents creates the endpoint it names, so the test endpoint exists once delivered."""

    def __init__(self, pinpoint: Any, application_id: str) -> None:
        self._pinpoint = pinpoint
        self._application_id = application_id

    def delivered(self, endpoint_id: str) -> bool:
        try:
            self._pinpoint.get_endpoint(ApplicationId=self._application_id, EndpointId=endpoint_id)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"NotFoundException", "404"}:
                return False
            raise
        return True

    def cleanup(self, endpoint_id: str) -> None:
        with contextlib.suppress(ClientError):  # already gone, or never created
            self._pinpoint.delete_endpoint(
                ApplicationId=self._application_id, EndpointId=endpoint_id
            )


def pinpoint_probe(environment: Mapping[str, str], client: Callable[[str], Any]) -> PinpointProbe:
    """The pinpoint plug-in's `probe` hook: its project, asked with a client from `client`."""
    from chalicelib.destinations.pinpoint import Pinpoint

    return PinpointProbe(client("pinpoint"), Pinpoint.parse(environment).application_id)


@dataclass
class CheckPlan:
    api_url: str  # the stage's base URL, ending with "/"
    sqs: SQSClient
    dead_letter_queue: str
    probe: DeliveryProbe | None  # None: no configured destination can be asked
    timeout_seconds: float = 180.0
    poll_seconds: float = 5.0
    dead_letter_every: int = 4  # scan the dead-letter queue every n-th poll
    referer: str | None = None  # a page of the site, for stages with an origin allowlist
    verify_command: str = "make verify STAGE=<stage>"  # named when the event does not arrive


def _hit_url(api_url: str, query: dict[str, str]) -> str:
    return f"{api_url.rstrip('/')}/events?{urllib.parse.urlencode(query)}"


def _dead_letter_reason(sqs: SQSClient, url: str, event_id: str) -> str | None:
    """The rejection reason if the test event is on the dead-letter queue (then removed)."""
    scanner = Scanner(sqs, url, DEAD_LETTER_HOLD_SECONDS)
    try:
        for batch in scanner.batches():
            for letter in batch:
                if event_id in letter.body:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=letter.receipt_handle)
                    scanner.forget([letter.message_id])
                    return letter.reason
    finally:
        scanner.release()
    return None


def run_check(
    plan: CheckPlan,
    out: IO[str],
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print one line per step; 0 when every step passed."""
    run_id = uuid.uuid4().hex[:12]
    endpoint_id = f"pixel-relay-check-{run_id}"
    event_id = f"pixel-relay-check-{run_id}"

    def say(ok: bool, text: str) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {text}", file=out, flush=True)

    query = {
        "event": CHECK_EVENT,
        "endpoint_id": endpoint_id,
        "event_id": event_id,
        "evat_source": "ops check",
        "gtmcb": run_id,
    }
    answer = get(_hit_url(plan.api_url, query), plan.referer)
    if answer.status != 200:
        say(False, f"test hit: HTTP {answer.status} {answer.body[:200]!r}")
        return 1
    if not answer.body.startswith(GIF_MAGIC):
        say(
            False,
            f"test hit: 200 but the body is not a GIF ({answer.content_type},"
            f" {answer.body[:40]!r}): API Gateway's binary media types must include */*;"
            " browsers would report the tag as failed",
        )
        return 1
    say(True, f"test hit answered 200 {answer.content_type}, a GIF: the event is queued")

    bad = get(
        _hit_url(plan.api_url, {"event": "_session.start", "endpoint_id": endpoint_id}),
        plan.referer,
    )
    reason = bad.body.decode("utf-8", "replace").strip()
    refused = bad.status == 400 and reason.startswith("event:")
    say(refused, f"bad hit answered {bad.status}: {reason[:120]}")

    dead_letter_url = plan.sqs.get_queue_url(QueueName=plan.dead_letter_queue)["QueueUrl"]
    deadline = time.monotonic() + plan.timeout_seconds
    polls = 0
    try:
        while True:
            if plan.probe is not None and plan.probe.delivered(endpoint_id):
                say(True, f"the test event reached the destination (endpoint {endpoint_id})")
                return 0 if refused else 1
            polls += 1
            last = time.monotonic() >= deadline
            if last or polls % plan.dead_letter_every == 0:
                rejected = _dead_letter_reason(plan.sqs, dead_letter_url, event_id)
                if rejected is not None:
                    say(False, f"the consumer rejected the test event: {rejected}")
                    return 1
            if last and plan.probe is None:
                say(
                    True,
                    f"no rejection of the test event within {plan.timeout_seconds:.0f} s"
                    " (its delivery cannot be probed for this stage's destinations: look for"
                    f" event {event_id} there)",
                )
                return 0 if refused else 1
            if last:
                say(
                    False,
                    f"the test event did not arrive within {plan.timeout_seconds:.0f} s: run"
                    f" `{plan.verify_command}` (the mapping, the queues, the consumer's"
                    " settings), then read the consumer's logs and the events queue's age on"
                    " the dashboard",
                )
                return 1
            sleep(plan.poll_seconds)
    finally:
        if plan.probe is not None:
            plan.probe.cleanup(endpoint_id)

"""`ops check`: does a deployed stage work end to end, as a browser and each destination see
it?

1. A test hit, sent with Chromium's image `Accept` header, must come back as a real GIF. A
   200 whose body is not a GIF means API Gateway's binary media types are wrong: browsers
   would fire the tag's failure handler although the event was queued.
2. A deliberately bad hit must come back 400 with its reason.
3. The test event is followed to where it goes, for each configured destination. One that
   can be read back has a probe (its plug-in's `probe` hook, `devtools/ops/probes/`) that
   finds the event there (Customer Profiles' object on the test profile, Pinpoint's test
   endpoint, a stream's record). For one that cannot (a delivery stream, an event bus), the
   check proves
   at least that the event left the events queue and was not parked: the queue read empty
   (nothing waiting, in flight or delayed) on two polls in a row after the hit. SQS's
   counts are approximate ("For some metrics, the result is approximate because of the
   distributed architecture of Amazon SQS", SQS Developer Guide), hence two. A stage whose
   queue is never empty in the timeout cannot be told apart from one that does not consume:
   the check says so rather than guessing.

Still queued, or parked on the dead-letter queue (the check prints the reason and removes
the test message), is a failure naming what to run next. The test event is
`pixel_relay_check` for an endpoint `pixel-relay-check-<random>`; each probe removes what
the test left where it can (a Pinpoint endpoint, a Customer Profiles profile).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from devtools.errors import one_line
from devtools.ops.dlq.scan import Scanner
from devtools.ops.probes.base import DeliveryProbe, TestEvent

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
# Polls in a row that must find the events queue empty (its counts are approximate).
EMPTY_POLLS: Final = 2
QUEUE_COUNTS: Final = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)

_opener = urllib.request.build_opener()


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def get(url: str, referer: str | None = None) -> Answer:
    """GET as Chromium requests an image (for a page at `referer`, if given). A network
    error (refused, unreachable, a name that does not resolve) raises URLError/OSError."""
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


@dataclass
class CheckPlan:
    api_url: str  # the stage's base URL, ending with "/"
    sqs: SQSClient
    dead_letter_queue: str
    # Each configured destination, with its probe, or None where it cannot be read back.
    probes: Mapping[str, DeliveryProbe | None]
    events_queue: str = ""  # "": not watched (every destination has a probe)
    stage: str = "<stage>"
    timeout_seconds: float = 180.0
    poll_seconds: float = 5.0
    dead_letter_every: int = 4  # scan the dead-letter queue every n-th poll
    referer: str | None = None  # a page of the site, for stages with an origin allowlist
    verify_command: str = "make verify STAGE=<stage>"  # named when the event does not arrive
    consumer: str = "pixel-relay-<stage>-deliver"  # its log group is named in failures
    found: dict[str, str] = field(default_factory=dict)  # destination -> where (filled in)


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


def queue_count(sqs: SQSClient, url: str) -> int:
    """Messages on the queue: waiting, in flight and delayed (SQS's approximate counts)."""
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(QUEUE_COUNTS))
    return sum(int(value) for value in attributes["Attributes"].values())


def run_check(
    plan: CheckPlan,
    out: IO[str],
    sleep: Callable[[float], object] = time.sleep,
) -> int:
    """Print one line per step; 0 when every step passed. An AWS or network error stops the
    check with one line."""

    def say(ok: bool, text: str) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {text}", file=out, flush=True)

    try:
        return _run(plan, say, sleep)
    except (urllib.error.URLError, OSError, ClientError, BotoCoreError) as error:
        say(False, f"the check stopped: {one_line(error)}")
        return 1


def _run(
    plan: CheckPlan, say: Callable[[bool, str], None], sleep: Callable[[float], object]
) -> int:
    run_id = uuid.uuid4().hex[:12]
    test = TestEvent(
        endpoint_id=f"pixel-relay-check-{run_id}",
        event_id=f"pixel-relay-check-{run_id}",
        sent_at=datetime.now(UTC),
    )
    query = {
        "event": CHECK_EVENT,
        "endpoint_id": test.endpoint_id,
        "event_id": test.event_id,
        "evat_source": "ops check",
        "gtmcb": run_id,
    }
    url = _hit_url(plan.api_url, query)
    try:
        answer = get(url, plan.referer)
    except (urllib.error.URLError, OSError) as error:
        say(False, f"test hit: {plan.api_url} cannot be reached: {one_line(error)}")
        return 1
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
        _hit_url(plan.api_url, {"event": "_session.start", "endpoint_id": test.endpoint_id}),
        plan.referer,
    )
    reason = bad.body.decode("utf-8", "replace").strip()
    refused = bad.status == 400 and reason.startswith("event:")
    say(refused, f"bad hit answered {bad.status}: {reason[:120]}")
    try:
        followed = _follow(plan, test, say, sleep)
    finally:
        for probe in plan.probes.values():
            if probe is not None:
                probe.cleanup(test)
    return 0 if refused and followed else 1


def _follow(
    plan: CheckPlan,
    test: TestEvent,
    say: Callable[[bool, str], None],
    sleep: Callable[[float], object],
) -> bool:
    """Wait for the test event at every destination (or, where none can be read back, for it
    to leave the events queue), watching the dead-letter queue; True when it arrived."""
    dead_letter_url = plan.sqs.get_queue_url(QueueName=plan.dead_letter_queue)["QueueUrl"]
    unreadable = [name for name, probe in plan.probes.items() if probe is None]
    events_url = (
        plan.sqs.get_queue_url(QueueName=plan.events_queue)["QueueUrl"]
        if unreadable and plan.events_queue
        else None
    )
    pending = {name: probe for name, probe in plan.probes.items() if probe is not None}
    deadline = time.monotonic() + plan.timeout_seconds
    polls = empty_polls = 0
    waiting = 0
    while True:
        for name, probe in list(pending.items()):
            where = probe.delivered(test)
            if where is not None:
                say(True, f"{name}: the test event is there: {where}")
                del pending[name]
        if events_url is not None:
            waiting = queue_count(plan.sqs, events_url)
            empty_polls = empty_polls + 1 if waiting == 0 else 0
        left = events_url is None or empty_polls >= EMPTY_POLLS
        polls += 1
        last = time.monotonic() >= deadline
        if last or polls % plan.dead_letter_every == 0 or (not pending and left):
            rejected = _dead_letter_reason(plan.sqs, dead_letter_url, test.event_id)
            if rejected is not None:
                say(
                    False,
                    f"the consumer parked the test event on {plan.dead_letter_queue}: {rejected}."
                    " Fix what the reason names (the destination's settings, its permissions),"
                    f' then run make ops ARGS="check --stage {plan.stage}" again;'
                    f' other parked events: make ops ARGS="dlq --stage {plan.stage}"',
                )
                return False
        if not pending and left:
            for name in unreadable:
                say(
                    True,
                    f"{name}: the test event left {plan.events_queue} and was not parked"
                    f" ({name} cannot be read back: look for event id {test.event_id} there)",
                )
            return True
        if last:
            _report_missing(plan, test, say, pending, waiting if events_url else None)
            return False
        sleep(plan.poll_seconds)


def _report_missing(
    plan: CheckPlan,
    test: TestEvent,
    say: Callable[[bool, str], None],
    pending: Mapping[str, DeliveryProbe],
    waiting: int | None,
) -> None:
    """The failure lines when the time ran out: what did not arrive, and what to run."""
    within = f"within {plan.timeout_seconds:.0f} s"
    logs = (
        f"aws logs tail /aws/lambda/{plan.consumer} --since 15m"
        " --filter-pattern '\"events will be retried\"'"
    )
    for name in pending:
        say(False, f"{name}: the test event did not arrive {within}")
    if waiting:
        say(
            False,
            f"{plan.events_queue} still holds {waiting} message(s) after"
            f" {plan.timeout_seconds:.0f} s,"
            f" the test event perhaps among them (a busy queue is never empty: then look for"
            f" event id {test.event_id} at the destination)",
        )
    say(
        False,
        f"next: {plan.verify_command} (the mapping, the queues, the consumer's settings),"
        f" then {logs} (why the consumer retries)",
    )

"""What a hit costs in requests: GET hits against beacons (`POST /events`) of 10 and 50 hits,
and the GTM web tag's default transport.

The same events go through the real app handler (`app.app`) as API Gateway hands them to
Lambda (REST, proxy integration: `devtools.api_gateway`): once as one GET each, once as
beacons of 10 lines and once as beacons of 50; and as the web tag sends them by default
(`template`): the tag (gtm/pixel-relay-tag.tpl) runs on the strict GTM emulator in simulated
pages with the real pixel-relay.js (devtools/gtm/run_pages.mjs, Node), and whatever leaves
those pages (beacons, or images if the script would fall back) is what the handler gets. The
page model is the browser proof's (tests/gtm/test_browser_proof.py): pages of
TEMPLATE_EVENTS_PER_PAGE events, one every TEMPLATE_GAP_MS, then the visitor leaves. Counted
per 1,000 events:

- API Gateway requests: the proxy events handed to the app, one per HTTP request;
- Lambda invocations: calls of the handler, one per request in a proxy integration;
- SQS requests: the app's calls as its real boto3 client makes them, answered in-process
  (`bench.fakes`), and the requests SQS bills for them (each 64 KiB of a call's payload).

Every event must be accepted (a GIF, or `{"accepted": n, "refused": []}`) and every message
enqueued, or the stage fails. The consumer's side (receive, delete, `PutEvents`) reads the
same messages whichever way they came, so it is the same for both and not counted here.

Also measured, for the cost per million events: the handler's CPU time per request and the
bytes it writes to stdout (its log and metric lines, which CloudWatch Logs ingests).
"""

from __future__ import annotations

import base64
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from bench.report import Figure

# The app, boto3 and the fakes are imported where a measurement starts: `python -m bench`
# makes its process offline first (bench.environment.prepare_process), and --help stays fast.

BEACON_SIZES: Final = (10, 50)
# The web tag's page model (see the module's docstring) and its target.
TEMPLATE_EVENTS_PER_PAGE: Final = 50
TEMPLATE_GAP_MS: Final = 100
TEMPLATE_TARGET_PER_1000: Final = 100.0
TEMPLATE_PIXEL: Final = "https://abc123.execute-api.us-east-1.amazonaws.com/api/events"
SQS_BILLING_CHUNK: Final = 64 * 1024
COUNTS: Final = (
    ("api_gateway", "API Gateway requests", "requests"),
    ("lambda", "Lambda invocations", "invocations"),
    ("sqs", "SQS requests", "requests"),
)
# The target: a beacon of at least 10 hits costs at most this share of a GET hit, per count.
BEACON_SHARE: Final = 0.1


def transports() -> list[tuple[str, str]]:
    """(key, label) of each way of sending, in the table's order."""
    return (
        [("get", "GET hits")]
        + [(f"beacon{n}", f"beacons of {n}") for n in BEACON_SIZES]
        + [("template", "GTM web tag, default transport")]
    )


def figures() -> list[Figure]:
    """A row per count and transport. GET's rows are reported; a beacon's target is a tenth
    of GET's count from the same run, set once GET is measured."""
    rows = []
    for count, label, unit in COUNTS:
        for transport, name in transports():
            rows.append(
                Figure(f"transport_{count}_{transport}", f"{label} per 1,000 events, {name}", unit)
            )
    return rows


@dataclass
class SqsCalls:
    """Each SQS call the app makes, with its payload as SQS bills it."""

    operations: list[str] = field(default_factory=list)
    messages: int = 0
    billed: int = 0

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        body = params.get("body") or b"{}"
        document = json.loads(body)
        if model.name == "SendMessageBatch":
            payloads = [entry["MessageBody"] for entry in document["Entries"]]
        elif model.name == "SendMessage":
            payloads = [document["MessageBody"]]
        else:
            payloads = []
        size = sum(len(payload.encode("utf-8")) for payload in payloads)
        self.operations.append(model.name)
        self.messages += len(payloads)
        self.billed += max(1, math.ceil(size / SQS_BILLING_CHUNK))

    def take(self) -> SqsCalls:
        """What was recorded so far, and start again from nothing."""
        taken = SqsCalls(self.operations, self.messages, self.billed)
        self.operations, self.messages, self.billed = [], 0, 0
        return taken


@contextmanager
def stdout_bytes() -> Iterator[Callable[[], int]]:
    """File descriptor 1 into a temporary file for a block; the count of bytes written."""
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield lambda: os.fstat(sink.fileno()).st_size
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def beacon_headers() -> dict[str, str]:
    """What sendBeacon sends with a string body, from a shop's page to the API (cross-site)."""
    from bench.hits import BROWSER_HEADERS

    headers = {name: value for name, value in BROWSER_HEADERS.items() if name != "Accept"}
    return {
        **headers,
        "Accept": "*/*",
        "Content-Type": "text/plain;charset=UTF-8",
        "Origin": "https://shop.example.com",
        "Sec-Fetch-Dest": "empty",
        "Sec-Fetch-Mode": "no-cors",
    }


def template_data(query: str) -> dict[str, Any]:
    """The web tag's fields for the event a GET hit's query string describes."""
    from urllib.parse import parse_qs

    params = {name: values[0] for name, values in parse_qs(query).items()}
    return {
        "pixelUrl": TEMPLATE_PIXEL,
        "eventName": params["event"],
        "endpointId": params["endpoint_id"],
        "eventId": params.get("event_id", ""),
        "eventAttributesObject": {
            k.removeprefix("evat_"): v for k, v in params.items() if k.startswith("evat_")
        },
        "eventMetricsObject": {
            k.removeprefix("evmt_"): float(v) for k, v in params.items() if k.startswith("evmt_")
        },
        "requireAnalyticsStorage": True,
    }


def template_requests(queries: Sequence[str]) -> list[dict[str, Any]]:
    """What leaves the simulated pages when the web tag fires once per query (page model in
    the module's docstring): [{kind, method, url, body}]."""
    import subprocess

    from devtools.paths import ROOT

    script_url = TEMPLATE_PIXEL.removesuffix("events") + "pixel-relay.js"
    pages = [
        {
            "fires": [
                {"data": template_data(query), "after_ms": TEMPLATE_GAP_MS}
                for query in queries[start : start + TEMPLATE_EVENTS_PER_PAGE]
            ],
            "leave_after_ms": TEMPLATE_GAP_MS,
        }
        for start in range(0, len(queries), TEMPLATE_EVENTS_PER_PAGE)
    ]
    request = {
        "template": str(ROOT / "gtm" / "pixel-relay-tag.tpl"),
        "scripts": {script_url: str(ROOT / "chalicelib" / "static" / "pixel-relay.js")},
        "start_at": int(time.time() * 1000),
        "pages": pages,
    }
    result = subprocess.run(
        ["node", str(ROOT / "devtools" / "gtm" / "run_pages.mjs")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    answer = json.loads(result.stdout)
    outcomes = [outcome for page in answer["pages"] for outcome in page["outcomes"]]
    if outcomes.count("success") != len(queries):
        raise RuntimeError(
            f"template: {outcomes.count('success')} of {len(queries)} tags succeeded"
        )
    return [r for page in answer["pages"] for r in page["requests"]]


def _requests(transport: str, queries: Sequence[str]) -> list[tuple[dict[str, Any], int]]:
    """The proxy events for `transport`, each with the number of hits it carries."""
    from urllib.parse import urlsplit

    from bench.hits import proxy_event
    from devtools.api_gateway import beacon_event

    if transport == "get":
        return [(proxy_event(query), 1) for query in queries]
    if transport == "template":
        events = []
        for sent in template_requests(queries):
            if sent["method"] == "POST":
                body = sent["body"].encode()
                events.append((beacon_event(body, beacon_headers()), len(body.splitlines())))
            else:
                events.append((proxy_event(urlsplit(sent["url"]).query), 1))
        return events
    size = int(transport.removeprefix("beacon"))
    chunks = [queries[start : start + size] for start in range(0, len(queries), size)]
    return [
        (beacon_event("\n".join(chunk).encode(), beacon_headers()), len(chunk)) for chunk in chunks
    ]


def _accepted(answer: dict[str, Any], hits: int, request: dict[str, Any]) -> bool:
    from bench.hits import answered_gif

    if request["httpMethod"] == "GET":
        return answered_gif(answer)
    if answer.get("statusCode") != 200:
        return False
    body = answer.get("body") or "{}"
    # Chalice encodes the answer when the request's Accept (*/*) is a binary media type.
    raw = base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode()
    document = json.loads(raw)
    return bool(document.get("accepted") == hits and document.get("refused") == [])


def count_transport(transport: str, queries: Sequence[str]) -> dict[str, Any]:
    """Send `queries` by `transport` through the real handler in a warm container; every
    count and cost input. The container is warmed first by one request of other hits, as a
    Lambda container serves many: its once-per-container calls (the queue URL lookup) are
    reported apart, in `cold_container_sqs_operations`, and left out of the counts."""
    import boto3

    from app import app
    from bench.environment import quiet_stdout
    from bench.fakes import aws_in_process
    from bench.hits import sample_queries

    requests = _requests(transport, queries)
    warm_up = _requests(transport, sample_queries(len(queries), seed=97))[0]
    calls = SqsCalls()
    with aws_in_process(keep_bodies=False):
        session = boto3.DEFAULT_SESSION
        assert session is not None  # aws_in_process installs one
        # Before the app makes its client: a client copies the session's handlers.
        session.events.register("before-call.sqs", calls)
        with quiet_stdout():
            warmed = _accepted(app(warm_up[0], None), warm_up[1], warm_up[0])
        cold = calls.take()
        invocations = 0
        refused = 0 if warmed else 1
        with stdout_bytes() as written:
            cpu = time.process_time()
            for event, hits in requests:
                answer = app(event, None)
                invocations += 1
                if not _accepted(answer, hits, event):
                    refused += 1
            cpu = time.process_time() - cpu
            log_bytes = written()
    events = len(queries)
    if refused or calls.messages != events:
        raise RuntimeError(
            f"{transport}: {refused} request(s) not wholly accepted, {calls.messages} of "
            f"{events} events enqueued"
        )
    per_1000 = 1000 / events
    operations = {name: calls.operations.count(name) for name in sorted(set(calls.operations))}
    return {
        "events": events,
        "hits_per_request": events / len(requests),
        "api_gateway": round(len(requests) * per_1000, 2),
        "lambda": round(invocations * per_1000, 2),
        "sqs": round(len(calls.operations) * per_1000, 2),
        "sqs_billed": round(calls.billed * per_1000, 2),
        "sqs_operations": operations,
        "cold_container_sqs_operations": {
            name: cold.operations.count(name)
            for name in sorted(set(cold.operations))
            if not name.startswith("SendMessage")
        },
        "cpu_ms_per_request": round(cpu * 1000 / len(requests), 3),
        "log_bytes_per_request": round(log_bytes / len(requests), 1),
        "send_calls_per_request": round(
            sum(n for op, n in operations.items() if op.startswith("SendMessage")) / len(requests),
            2,
        ),
    }


# The cost model of docs/performance.md ("Cost per million hits"): us-east-1 list prices,
# x86, no free tier; the same assumptions, applied to what this run measured.
PRICE_API_GATEWAY: Final = 3.50  # per million REST requests
PRICE_LAMBDA_REQUEST: Final = 0.20  # per million
PRICE_LAMBDA_GB_SECOND: Final = 0.0000166667
PRICE_SQS_REQUEST: Final = 0.40  # per million billed requests (64 KiB chunks)
PRICE_LOGS_GB: Final = 0.50  # CloudWatch Logs ingestion, standard class
LAMBDA_MEMORY_GB: Final = 256 / 1024  # .chalice/config.json
VCPU_SHARE: Final = 256 / 1769  # one vCPU at 1,769 MB
SQS_SEND_ROUND_TRIP_MS: Final = 10.0  # assumed, in-region; the app's batch calls run in turn
LAMBDA_PLATFORM_LOG_BYTES: Final = 310  # START/END/REPORT lines, assumed
# One INIT per 1,000 invocations, 1.4 s each at 256 MB (billed since 2025-08-01).
INITS_PER_INVOCATION: Final = 1 / 1000
INIT_SECONDS: Final = 1.4
CONSUMER_SQS_REQUESTS_PER_EVENT: Final = 0.2  # receive and delete in tens (the same for both)
SAME_FOR_BOTH: Final = {  # per million events, from the same section: unchanged by transport
    "consumer Lambda: requests and duration": 0.008,
    "consumer Lambda: CloudWatch Logs": 0.005,
    "Pinpoint events": 1.000,
}


def cost_per_million(counts: dict[str, Any]) -> dict[str, float]:
    """Dollars per million events for one transport, line by line (docs/performance.md)."""
    requests = counts["api_gateway"] * 1000  # per million events
    invocations = counts["lambda"] * 1000
    billed_ms = (
        counts["cpu_ms_per_request"] / VCPU_SHARE
        + counts["send_calls_per_request"] * SQS_SEND_ROUND_TRIP_MS
    )
    log_bytes = counts["log_bytes_per_request"] + LAMBDA_PLATFORM_LOG_BYTES
    lines = {
        "API Gateway REST requests": requests * PRICE_API_GATEWAY / 1e6,
        "pixel Lambda: requests": invocations * PRICE_LAMBDA_REQUEST / 1e6,
        # Lambda bills each invocation's duration rounded up to the millisecond.
        "pixel Lambda: duration, INIT included": (
            invocations * math.ceil(billed_ms) / 1000
            + invocations * INITS_PER_INVOCATION * INIT_SECONDS
        )
        * LAMBDA_MEMORY_GB
        * PRICE_LAMBDA_GB_SECOND,
        "pixel Lambda: CloudWatch Logs": invocations * log_bytes / 1e9 * PRICE_LOGS_GB,
        "SQS requests (send, receive, delete)": (
            counts["sqs_billed"] * 1000 + CONSUMER_SQS_REQUESTS_PER_EVENT * 1e6
        )
        * PRICE_SQS_REQUEST
        / 1e6,
        **SAME_FOR_BOTH,
    }
    lines["total"] = sum(lines.values())
    return {name: round(value, 4) for name, value in lines.items()}


def measure(events: int) -> dict[str, Any]:
    """Every transport over the same `events` hits; counts, ratios to GET, costs."""
    from bench.hits import sample_queries

    queries = sample_queries(events, seed=13)
    results = {transport: count_transport(transport, queries) for transport, _ in transports()}
    for counts in results.values():
        counts["cost_per_million_events"] = cost_per_million(counts)
        counts["share_of_get"] = {
            count: round(counts[count] / results["get"][count], 4) for count, _, _ in COUNTS
        }
    return results


def apply(
    measured: dict[str, Any],
    set_figure: Callable[[str, float, dict[str, Any]], None],
    by_key: dict[str, Figure],
) -> None:
    """Fill the rows of figures() from measure(): GET reported, beacons judged against it,
    the web tag's API Gateway requests against TEMPLATE_TARGET_PER_1000."""
    for count, _, _ in COUNTS:
        get = measured["get"][count]
        for transport, _ in transports():
            key = f"transport_{count}_{transport}"
            set_figure(key, measured[transport][count], measured[transport])
            if transport == "template":
                if count == "api_gateway":
                    by_key[key].target = TEMPLATE_TARGET_PER_1000
            elif transport != "get":
                by_key[key].target = round(get * BEACON_SHARE, 4)


def notes(by_key: dict[str, Figure]) -> list[str]:
    """Cost per million events for each transport, from the same run."""
    lines = []
    for transport, name in transports():
        figure = by_key.get(f"transport_lambda_{transport}")
        if figure is None or figure.error:
            continue
        details = figure.details
        cost = details["cost_per_million_events"]
        lines.append(
            f"transport, {name}: ${cost['total']:.2f} per million events (API Gateway "
            f"${cost['API Gateway REST requests']:.3f}, pixel Lambda "
            f"${cost['pixel Lambda: requests'] + cost['pixel Lambda: duration, INIT included']:.3f}"
            f" + logs "
            f"${cost['pixel Lambda: CloudWatch Logs']:.3f}, SQS "
            f"${cost['SQS requests (send, receive, delete)']:.3f}); "
            f"{details['cpu_ms_per_request']} ms CPU and "
            f"{details['log_bytes_per_request']:.0f} log bytes a request, "
            f"{details['sqs_billed']} billed SQS requests / 1k"
        )
    return lines

"""`make dev`: the whole pixel-relay pipeline on one machine, with no AWS account.

Lambda, API Gateway, SQS and Pinpoint are each replaced by a local piece, so a GTM tag (or
curl) can hit the pixel and the event is seen arriving in "Pinpoint" a moment later:

- SQS: moto's server, with the stage's queues (the events queue redrives to the DLQ);
- Pinpoint: `devtools.pinpoint_standin`, which prints every event it accepts;
- the pixel: `chalice local`, which injects the stage's environment variables itself;
- the consumer: this process imports app.py and feeds `deliver` from the queue with
  `devtools.event_source`, because `chalice local` never runs SQS handlers.

Credentials are fake and AWS_ENDPOINT_URL points at a closed loopback port, so a client
that is not pointed at a local server fails at once instead of reaching a real account.
Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.config import ConfigError, Settings
from devtools.event_source import LocalEventSourceMapping, PollResult
from devtools.pinpoint_standin import AcceptedEvent, PinpointStandIn

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

ROOT: Final = Path(__file__).resolve().parents[1]
HOST: Final = "127.0.0.1"
REGION: Final = "us-east-1"
# Nothing listens on the discard port: any client not pointed at a local server fails fast.
NOWHERE: Final = f"http://{HOST}:9"
FAKE_AWS: Final[dict[str, str]] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ENDPOINT_URL": NOWHERE,
    # No profile or config file can add credentials, a role or an endpoint of its own.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
# Lambda retries a failed message this many times before SQS moves it to the DLQ.
MAX_RECEIVE_COUNT: Final = 5
# Short, so a batch that failed comes back within seconds rather than Lambda's minutes.
VISIBILITY_TIMEOUT_SECONDS: Final = 5
STARTUP_TIMEOUT_SECONDS: Final = 60.0
STOP_TIMEOUT_SECONDS: Final = 5.0
EXAMPLE_QUERY: Final = (
    "event=purchase&endpoint_id=demo-endpoint&evat_product=shoes&evmt_price=49.90&gtmcb=123"
)

_print_lock = threading.Lock()


def say(line: str) -> None:
    """One whole line on stdout, flushed: the Pinpoint stand-in prints from its own threads."""
    with _print_lock:
        print(line, flush=True)


def stage_environment(stage: str, root: Path = ROOT) -> dict[str, str]:
    """What Chalice gives a stage: top-level environment_variables, then the stage's own."""
    config = json.loads((root / ".chalice" / "config.json").read_text())
    stages = config.get("stages", {})
    if stage not in stages:
        known = ", ".join(sorted(stages)) or "none"
        raise SystemExit(f"stage {stage!r} is not in .chalice/config.json (stages: {known})")
    environment = {str(k): str(v) for k, v in config.get("environment_variables", {}).items()}
    environment.update(
        {str(k): str(v) for k, v in stages[stage].get("environment_variables", {}).items()}
    )
    return environment


def isolated_environment(base: Mapping[str, str]) -> dict[str, str]:
    """`base` with fake credentials, no profile, and loopback kept away from any proxy."""
    environment = {k: v for k, v in base.items() if k not in {"AWS_PROFILE", "AWS_ROLE_ARN"}}
    environment.update(FAKE_AWS)
    for name in ("NO_PROXY", "no_proxy"):
        existing = environment.get(name, "")
        environment[name] = ",".join(filter(None, [existing, HOST, "localhost"]))
    return environment


def free_port() -> int:
    """A port nothing listens on now (`chalice local` cannot report the port it bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def ensure_free(port: int, what: str) -> None:
    """Fail with a clear message: ThreadedMotoServer waits forever if it cannot bind."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers do: a port whose last connections are in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as error:
            message = f"{what} port {port} is not free ({error.strerror}); pick another"
            raise SystemExit(message) from None


@dataclass(frozen=True)
class Queues:
    events_url: str
    dead_letter_url: str


def create_queues(sqs: SQSClient, events_queue: str, dead_letter_queue: str) -> Queues:
    """The DLQ first (the events queue's RedrivePolicy needs its ARN), then the events queue."""
    dead_letter_url = sqs.create_queue(QueueName=dead_letter_queue)["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(
        QueueUrl=dead_letter_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
    events_url = sqs.create_queue(
        QueueName=events_queue,
        Attributes={
            "RedrivePolicy": json.dumps(redrive),
            "VisibilityTimeout": str(VISIBILITY_TIMEOUT_SECONDS),
        },
    )["QueueUrl"]
    return Queues(events_url, dead_letter_url)


def describe_event(record: AcceptedEvent) -> str:
    """One readable line per event Pinpoint accepted."""
    event = record.event
    line = (
        f"pinpoint <- {event.get('EventType')} endpoint={record.endpoint_id}"
        f" attrs={json.dumps(event.get('Attributes', {}), sort_keys=True)}"
        f" metrics={json.dumps(event.get('Metrics', {}), sort_keys=True)}"
    )
    if record.endpoint:
        line += f" endpoint_update={json.dumps(record.endpoint, sort_keys=True)}"
    return line


def describe_poll(result: PollResult) -> str:
    line = f"consumer: batch received={result.received} deleted={result.deleted}"
    line += f" left={result.left}"
    if result.error is not None:
        line += f" error={result.error}"
    return line


def start_chalice(
    stage: str, port: int, environment: Mapping[str, str], reload: bool
) -> subprocess.Popen[bytes]:
    """`chalice local`, in this process group so a terminal's Ctrl-C reaches it too."""
    command = [
        str(ROOT / ".venv" / "bin" / "chalice"),
        "local",
        "--stage",
        stage,
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    if not reload:
        command.append("--no-autoreload")
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env={**environment, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
    )


def stop_chalice(process: subprocess.Popen[bytes], reload: bool) -> None:
    """Ask, then insist. With autoreload only SIGINT makes the CLI's parent stop its worker
    (SIGTERM would kill the parent alone and leave the worker holding the port); without it
    SIGTERM stops the server quietly, where SIGINT makes click print "Aborted!"."""
    first = signal.SIGINT if reload else signal.SIGTERM
    for sig in (first, signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT_SECONDS)


_no_proxy_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_until_answering(
    url: str, process: subprocess.Popen[bytes], stopping: threading.Event
) -> None:
    """Return once anything answers HTTP at `url`; fail if chalice exits or never does."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not stopping.is_set():
        if process.poll() is not None:
            raise SystemExit(f"chalice local exited with status {process.returncode}")
        try:
            with _no_proxy_opener.open(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # an error page is still an answer: the server is up
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"chalice local did not answer on {url} within 60 s")
        stopping.wait(0.2)


def load_deliver() -> Callable[[dict[str, Any], Any], Any]:
    """app.deliver, imported only now: app.py reads the queue wiring from os.environ."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    deliver: Callable[[dict[str, Any], Any], Any] = importlib.import_module("app").deliver
    return deliver


@contextlib.contextmanager
def stop_on_signals(stopping: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM ask the main loop to stop, so every piece is shut down in order."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def banner(pixel_url: str, sqs_url: str, pinpoint_url: str, stage: str) -> str:
    hit = f"{pixel_url}?{EXAMPLE_QUERY}"
    return "\n".join(
        [
            "",
            f"pixel-relay local stack ready (stage {stage})",
            f"  pixel:     {pixel_url}",
            f"  example:   {hit}",
            f"  curl:      curl -s -o /dev/null -w '%{{http_code}} %{{content_type}}\\n' '{hit}'",
            f"  SQS:       {sqs_url} (moto)",
            f"  Pinpoint:  {pinpoint_url} (stand-in)",
            "  stop:      Ctrl-C (or SIGTERM)",
            "",
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.local_stack",
        description="Run the pixel, SQS, the consumer and a Pinpoint stand-in locally.",
    )
    parser.add_argument("--pixel-port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--sqs-port", type=int, default=5000, help="0 picks a free port")
    parser.add_argument("--pinpoint-port", type=int, default=9100, help="0 picks a free port")
    parser.add_argument("--stage", default="dev", help="stage in .chalice/config.json")
    # Off by default: chalice's watcher (stat polling unless watchdog is installed) restarts
    # the pixel on any file written under the repo, caches and .venv included, dropping hits
    # for a second each time; and the consumer here would go on running the old code.
    parser.add_argument(
        "--autoreload",
        action="store_true",
        help="restart the pixel (not the consumer) when a file under the repo changes",
    )
    parser.add_argument(
        "--exit-after",
        type=float,
        metavar="SECONDS",
        help="stop this long after the ready banner (smoke runs, tests)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Start everything, consume until stopped, then stop everything in reverse order."""
    args = parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # chalice and Powertools share stdout
    stage_env = stage_environment(args.stage)
    try:
        # The app's own parsing, before anything starts: a bad stage value is named at once.
        settings = Settings.from_env(stage_env)
    except ConfigError as error:
        raise SystemExit(f"stage {args.stage}: {error}") from None
    for port, what in (
        (args.pixel_port, "pixel"),
        (args.sqs_port, "SQS"),
        (args.pinpoint_port, "Pinpoint"),
    ):
        ensure_free(port, what)
    environment = isolated_environment(os.environ)
    os.environ.clear()
    os.environ.update(environment)

    stopping = threading.Event()
    with stop_on_signals(stopping), contextlib.ExitStack() as stack:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per SQS call
        moto = ThreadedMotoServer(ip_address=HOST, port=args.sqs_port, verbose=False)
        moto.start()
        stack.callback(moto.stop)
        sqs_url = "http://{}:{}".format(*moto.get_host_and_port())
        os.environ["AWS_ENDPOINT_URL_SQS"] = sqs_url
        sqs: SQSClient = boto3.client("sqs", endpoint_url=sqs_url, region_name=REGION)
        events_queue, dead_letter_queue = settings.wiring.events_queue, settings.dead_letter_queue
        queues = create_queues(sqs, events_queue, dead_letter_queue)
        say(f"sqs: moto on {sqs_url}")
        say(
            f"sqs: {events_queue} (visibility {VISIBILITY_TIMEOUT_SECONDS} s,"
            f" to {dead_letter_queue} after {MAX_RECEIVE_COUNT} receives)"
        )

        application_id = settings.pinpoint_application_id
        standin = PinpointStandIn(
            [application_id], HOST, args.pinpoint_port, on_accept=lambda r: say(describe_event(r))
        ).start()
        stack.callback(standin.stop)
        os.environ["AWS_ENDPOINT_URL_PINPOINT"] = standin.url
        say(f"pinpoint: stand-in on {standin.url} for application {application_id}")

        # chalice local adds the stage's variables itself; it only needs the endpoints.
        pixel_port = args.pixel_port or free_port()
        chalice = start_chalice(args.stage, pixel_port, dict(os.environ), args.autoreload)
        stack.callback(stop_chalice, chalice, args.autoreload)
        pixel_url = f"http://{HOST}:{pixel_port}/events"
        wait_until_answering(f"http://{HOST}:{pixel_port}/", chalice, stopping)

        os.environ.update(stage_env)  # as Chalice would, before app.py reads it
        deliver = load_deliver()
        mapping = LocalEventSourceMapping(
            sqs,
            queues.events_url,
            # Chalice's handler object takes (event, context) like Lambda; only the
            # event is read, so no context is needed.
            handler=lambda event: deliver(event, None),
            batch_size=settings.wiring.batch_size,
            report_batch_item_failures=settings.report_batch_item_failures,
            redeliver_at_once=False,  # like Lambda: retries wait for the visibility timeout
        )
        if not stopping.is_set():
            say(banner(pixel_url, sqs_url, standin.url, args.stage))
        deadline = None if args.exit_after is None else time.monotonic() + args.exit_after
        status = consume(mapping, chalice, stopping, deadline)
        say("stopping")
    say("stopped")
    return status


def consume(
    mapping: LocalEventSourceMapping,
    chalice: subprocess.Popen[bytes],
    stopping: threading.Event,
    deadline: float | None,
) -> int:
    """Long-poll the events queue until asked to stop, printing one line per batch.

    Returns the exit status: 1 if `chalice local` died, since the pixel is then gone.
    """
    while not stopping.is_set():
        if deadline is not None and time.monotonic() >= deadline:
            break
        if chalice.poll() is not None:
            say(f"chalice local exited with status {chalice.returncode}")
            return 1
        try:
            result = mapping.poll(wait_seconds=1)
        except (BotoCoreError, ClientError) as error:
            say(f"consumer: polling failed: {error}")
            stopping.wait(1)
            continue
        if result.received:
            say(describe_poll(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

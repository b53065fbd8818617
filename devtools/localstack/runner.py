"""`make dev`: the whole pixel-relay pipeline on one machine, with no AWS account.

Lambda, API Gateway, SQS and the destinations are each replaced by a local piece, so a
browser (the demo page, a real GTM container, curl) can hit the pixel and see the event
arrive:

- SQS: moto's server, with the stage's queues created as deployed (`devtools.queue_spec`);
- the pixel: `chalice local`, which injects the stage's environment variables itself;
- the consumer: `devtools.localstack.consumer`, feeding `deliver` as Lambda's event source mapping
  would, because `chalice local` never runs SQS handlers;
- the destinations: by default a dry run of each configured one (`devtools.localstack.dry_run`;
  the dev stage's default is Customer Profiles, whose stand-in validates every
  BatchPutProfileObject request against botocore's model, as the Pinpoint stand-in does
  PutEvents), each event appended to a JSON Lines file and printed as one line; `--real`
  sends to the stage's real destinations with your own credentials instead;
- the demo page (`devtools.localstack.demo_server`).

Autoreload: when app.py, chalicelib/ or .chalice/config.json change, the pixel and the
consumer are restarted together, so both always run the same code. (Chalice's own reloader
restarts on any file event under the project, .venv and caches included.)

In dry-run mode credentials are fake and AWS_ENDPOINT_URL points at a closed loopback port,
so a client not pointed at a local server fails at once instead of reaching an account.
Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import boto3

from chalicelib.config import Settings
from chalicelib.destinations import registry
from chalicelib.env import ConfigError
from devtools.deploy.erasure_table import ensure_erasure_table
from devtools.localstack.demo_server import DemoServer
from devtools.localstack.doubles import stand_in_ports
from devtools.localstack.dry_run import DryRun
from devtools.offline import HOST, REGION, isolated_environment, without_proxy_for_loopback
from devtools.paths import ROOT
from devtools.process import (
    free_port,
    port_is_free,
    stop_on_signals,
    stop_process,
    tool,
    wait_until_answering,
)
from devtools.queue_spec import QueueSpec, stage_environment

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# The dry run's stand-ins add their own (pinpoint 9100, profiles 9200).
DEFAULT_PORTS: Final = {"pixel": 8000, "sqs": 5000, **stand_in_ports(), "demo": 8001}
WATCHED: Final = ("app.py", "chalicelib", ".chalice/config.json")
EXAMPLE_QUERY: Final = (
    "event=purchase&endpoint_id=demo-endpoint&evat_product=shoes&evmt_price=49.90&gtmcb=123"
)

_print_lock = threading.Lock()


def say(line: str) -> None:
    """One whole line on stdout, flushed: the stand-in prints from its own threads."""
    with _print_lock:
        print(line, flush=True)


# Ports ------------------------------------------------------------------------------------


def choose_port(name: str, requested: int | None) -> int:
    """An asked-for port must be free (0 picks one); a busy default moves aside, saying so."""
    if requested == 0:
        return free_port()
    if requested is not None:
        if not port_is_free(requested):
            raise SystemExit(f"{name} port {requested} is busy; pick another (0 = any free)")
        return requested
    default = DEFAULT_PORTS[name]
    if port_is_free(default):
        return default
    chosen = free_port()
    say(f"{name}: port {default} is busy, using {chosen}")
    return chosen


# Pieces -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Queues:
    events_url: str
    dead_letter_url: str


def create_queues(sqs: SQSClient, spec: QueueSpec) -> Queues:
    """The DLQ first (the events queue's RedrivePolicy needs its ARN), then the events queue."""
    dead_letter_url = sqs.create_queue(
        QueueName=spec.dead_letter_queue, Attributes=spec.dead_letter_attributes()
    )["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(
        QueueUrl=dead_letter_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    events_url = sqs.create_queue(
        QueueName=spec.events_queue, Attributes=spec.events_attributes(dead_letter_arn)
    )["QueueUrl"]
    return Queues(events_url, dead_letter_url)


class CodeWatcher:
    """Notices a change to the code both Lambda functions run, by modification times."""

    def __init__(self, root: Path = ROOT) -> None:
        self._root = root
        self._seen = self._snapshot()

    def _snapshot(self) -> dict[Path, float]:
        files: dict[Path, float] = {}
        for name in WATCHED:
            path = self._root / name
            candidates = path.rglob("*.py") if path.is_dir() else [path]
            for file in candidates:
                with contextlib.suppress(FileNotFoundError):
                    files[file] = file.stat().st_mtime
        return files

    def changed(self) -> bool:
        current = self._snapshot()
        if current == self._seen:
            return False
        self._seen = current
        return True


@dataclass
class Workers:
    """`chalice local` and the consumer, started and stopped together."""

    stage: str
    pixel_port: int
    environment: dict[str, str]
    pixel: subprocess.Popen[bytes] | None = None
    consumer: subprocess.Popen[bytes] | None = None

    def start(self, stopping: threading.Event) -> None:
        self.pixel = subprocess.Popen(
            [
                tool("chalice"),
                "local",
                "--stage",
                self.stage,
                "--host",
                HOST,
                "--port",
                str(self.pixel_port),
                "--no-autoreload",  # this stack restarts both workers itself
            ],
            cwd=ROOT,
            env={**self.environment, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
        )
        self.consumer = subprocess.Popen(
            [sys.executable, "-m", "devtools.localstack.consumer"],
            cwd=ROOT,
            env={**self.environment, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
        )
        url = f"http://{HOST}:{self.pixel_port}/"
        wait_until_answering(url, self.pixel, stopping, name="chalice local")

    def died(self) -> str | None:
        for name, process in (("chalice local", self.pixel), ("consumer", self.consumer)):
            if process is not None and process.poll() is not None:
                return f"{name} exited with status {process.returncode}"
        return None

    def stop(self) -> None:
        for process in (self.consumer, self.pixel):
            if process is not None:
                stop_process(process)
        self.pixel = self.consumer = None


# Command line -----------------------------------------------------------------------------


def banner(pixel_url: str, demo_url: str, destination: str, spec: QueueSpec) -> str:
    hit = f"{pixel_url}?{EXAMPLE_QUERY}"
    return "\n".join(
        [
            "",
            "pixel-relay is running locally",
            f"  demo page:  {demo_url}",
            f"  pixel:      {pixel_url}",
            f"  try:        curl -s -A 'Mozilla/5.0 (demo)' -o /dev/null -w '%{{http_code}}\\n'"
            f" '{hit}'",
            f"  delivered:  {destination}",
            f"  retries:    a failed batch comes back after {spec.visibility_timeout_seconds} s"
            f" (the queue's visibility timeout); after {spec.max_receive_count} receives it"
            f" moves to {spec.dead_letter_queue}",
            "  stop:       Ctrl-C",
            "",
        ]
    )


def _port_option(name: str) -> int | None:
    value = os.environ.get(f"PIXEL_RELAY_{name.upper()}_PORT")
    return int(value) if value else None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m devtools.localstack.runner",
        description=(
            "Run the pixel, SQS, the consumer, a dry run of the destinations and the demo page."
        ),
    )
    for name, default in DEFAULT_PORTS.items():
        parser.add_argument(
            f"--{name}-port",
            type=int,
            default=_port_option(name),
            help=f"default {default} (a free one if busy), or PIXEL_RELAY_{name.upper()}_PORT;"
            " 0 = any free port",
        )
    parser.add_argument("--stage", default="dev", help="stage in .chalice/config.json")
    parser.add_argument(
        "--destinations",
        help="override the stage's DESTINATIONS (customer-profiles by default),"
        " e.g. pinpoint,customer-profiles",
    )
    parser.add_argument(
        "--real",
        action="store_true",
        default=os.environ.get("PIXEL_RELAY_REAL") == "1",
        help="deliver to the stage's real destinations with your own AWS credentials"
        " instead of the dry run (SQS stays local)",
    )
    parser.add_argument(
        "--dry-run-log",
        type=Path,
        default=ROOT / ".local" / "dry-run.jsonl",
        help="where the dry run writes each event (JSON Lines); emptied at start",
    )
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        help="seconds before a failed batch comes back (default: as deployed, 6x the"
        " consumer's Lambda timeout)",
    )
    parser.add_argument(
        "--exit-after",
        type=float,
        metavar="SECONDS",
        help="stop this long after the ready banner (smoke runs, tests)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Start everything, watch until stopped, then stop everything in reverse order."""
    args = parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    stage_env = stage_environment(args.stage)
    if args.destinations:
        stage_env["DESTINATIONS"] = args.destinations
    try:
        # The app's own parsing, before anything starts: a bad stage value is named at once.
        settings = Settings.from_env(stage_env)
        registry.configure(settings.destinations, stage_env)
    except ConfigError as error:
        raise SystemExit(f"stage {args.stage}: {error}") from None
    spec = QueueSpec.for_stage(args.stage)
    if args.visibility_timeout is not None:
        spec = dataclasses.replace(spec, visibility_timeout_seconds=args.visibility_timeout)
    ports = {name: choose_port(name, getattr(args, f"{name}_port")) for name in DEFAULT_PORTS}
    dry_run = not args.real
    if dry_run:
        environment = isolated_environment(os.environ)
    else:
        environment = without_proxy_for_loopback(dict(os.environ))

    stopping = threading.Event()
    with stop_on_signals(stopping), contextlib.ExitStack() as stack:
        from devtools.standins.moto_proxy import strict_moto

        # moto behind the proxy that refuses what AWS would refuse: the SQS port is the
        # proxy's, and every client (the pixel, the consumer, the doubles) goes through it.
        sqs_url = stack.enter_context(strict_moto(HOST, ports["sqs"])).url
        environment["AWS_ENDPOINT_URL_SQS"] = sqs_url
        sqs: SQSClient = boto3.client(
            "sqs",
            endpoint_url=sqs_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        create_queues(sqs, spec)
        say(
            f"sqs: moto on {sqs_url} (requests checked against AWS's rules):"
            f" {spec.events_queue}, {spec.dead_letter_queue}"
        )
        if dry_run:
            # With erasure on, the consumer reads its list on every batch: a moto table.
            erasure_table = ensure_erasure_table(
                boto3.client(
                    "dynamodb",
                    endpoint_url=sqs_url,
                    region_name=REGION,
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",
                ),
                stage_env,
            )
            if erasure_table is not None:
                environment["AWS_ENDPOINT_URL_DYNAMODB"] = sqs_url
                say(f"dynamodb: moto on {sqs_url}: {erasure_table.describe()}")

        dry_run_pieces: DryRun | None = None
        if dry_run:
            dry_run_pieces = DryRun(
                settings.destinations,
                stage_env,
                args.dry_run_log,
                say,
                sqs_url,
                HOST,
                ports,
            )
            environment.update(dry_run_pieces.start())
            stack.callback(dry_run_pieces.stop)
            destination = (
                f"dry run of {', '.join(settings.destinations)}, validated and written to"
                f" {dry_run_pieces.log_path}"
            )
        else:
            destination = f"{', '.join(settings.destinations)} (real, with your credentials)"

        demo = DemoServer(
            pixel_url=f"http://{HOST}:{ports['pixel']}",
            # The page shows one delivery per event: the first destination's.
            delivered=(
                (lambda: dry_run_pieces.delivered(settings.destinations[0]))
                if dry_run_pieces
                else list
            ),
            simulate_outage=dry_run_pieces.simulate_outage if dry_run_pieces else _no_outage,
            host=HOST,
            port=ports["demo"],
            destination=settings.destinations[0],
            hit_policy=settings.hit_policy,
        ).start()
        stack.callback(demo.stop)

        workers = Workers(args.stage, ports["pixel"], {**environment, **stage_env})
        stack.callback(workers.stop)
        watcher = CodeWatcher()
        workers.start(stopping)
        say(banner(f"http://{HOST}:{ports['pixel']}/events", demo.url, destination, spec))
        status = supervise(workers, watcher, stopping, args.exit_after)
        say("stopping")
    say("stopped")
    return status


def _no_outage(calls: int) -> None:
    say("outage simulation needs the dry run: the destinations are real")


def supervise(
    workers: Workers, watcher: CodeWatcher, stopping: threading.Event, exit_after: float | None
) -> int:
    """Restart both workers on a code change; stop on a signal, a deadline or a crash."""
    deadline = None if exit_after is None else time.monotonic() + exit_after
    while not stopping.wait(0.5):
        if deadline is not None and time.monotonic() >= deadline:
            break
        if watcher.changed():
            say("code changed: restarting the pixel and the consumer")
            workers.stop()
            workers.start(stopping)
            continue
        problem = workers.died()
        if problem is not None:
            say(problem)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

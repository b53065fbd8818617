"""Operations for a deployed stage: the dead-letter queue, the GTM Image URL, an end-to-end
check. Development tooling: it runs on an operator's machine with their AWS credentials,
never in Lambda.

    make ops ARGS="dlq --stage prod [--samples 5] [--reason TEXT] [--event-type T]"
    make ops ARGS="dlq replay --stage prod [--reason TEXT] [--rejected-at pinpoint]
                   [--method auto|move-task|journal] [--resend-in-doubt]"
    make ops ARGS="url --stage prod [--api-url URL | --stack-name NAME]
                   [--events purchase,signup --container F]"
    make ops ARGS="check --stage prod [--api-url URL | --stack-name NAME]"

(`.venv/bin/python -m devtools.ops ...` underneath.)

Queue names, each destination's settings and the allowed attributes come from the stage in
.chalice/config.json; the API URL from `--api-url`, else the `EndpointURL` output of the stack
`--stack-name` (by default `pixel-relay-<stage>`, if it exists), else `chalice url` (what
`chalice deploy` recorded). See docs/operations.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.config import Settings
from chalicelib.destinations import registry
from chalicelib.env import ConfigError
from chalicelib.hits import HitPolicy, HitRefusedError, parse_hit
from devtools import hooks
from devtools.deploy.verify import Deployment, default_stack_name, find_deployment
from devtools.errors import one_line
from devtools.ops import forget
from devtools.ops import gtm as ops_gtm
from devtools.ops.check import CheckPlan, run_check
from devtools.ops.dlq.in_doubt import InDoubtResolver, in_doubt_resolver
from devtools.ops.dlq.journal import Journal, JournalBusyError
from devtools.ops.dlq.move_task import (
    MOVE_POLL_SECONDS,
    MoveTaskUnavailableError,
    blocking_entries,
    move_all,
)
from devtools.ops.dlq.replay import replay
from devtools.ops.dlq.scan import DEFAULT_HOLD_SECONDS, Progress, Selection, approximate_count
from devtools.ops.dlq.summary import summarize
from devtools.ops.probes.base import DeliveryProbe
from devtools.paths import REPLAY_DIR, ROOT
from devtools.process import aws_region, stop_on_signals, tool
from devtools.queue_spec import QueueSpec, stage_environment

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

STOPPING = "stopping after the batch in flight (Ctrl-C again to abort)"


class Ops:
    """AWS clients for one run; tests hand in clients pointed at a local server."""

    def __init__(self, session: Any = None) -> None:
        self._session: Any = session or boto3.Session()
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service)
        return self._clients[service]

    @property
    def sqs(self) -> SQSClient:
        client: SQSClient = self.client("sqs")
        return client

    @property
    def sqs_single_attempt(self) -> SQSClient:
        """For sends that must not be repeated: botocore retrying a send whose answer was
        lost enqueues the message twice. The replay decides itself what a failure means."""
        if "sqs-single-attempt" not in self._clients:
            config = Config(retries={"total_max_attempts": 1})
            self._clients["sqs-single-attempt"] = self._session.client("sqs", config=config)
        client: SQSClient = self._clients["sqs-single-attempt"]
        return client


# dlq --------------------------------------------------------------------------------------


def _selection(args: argparse.Namespace) -> Selection:
    return Selection(
        reason_contains=tuple(args.reason or ()),
        event_types=frozenset(args.event_type or ()),
        rejected_at=frozenset(args.rejected_at or ()),
    )


def _in_doubt(args: argparse.Namespace, ops: Ops, spec: QueueSpec) -> InDoubtResolver:
    """What settles an interrupted replay's in-doubt messages: the stage's dedupe table."""
    try:
        return in_doubt_resolver(
            stage_environment(args.stage, args.project_dir),
            ops.client("dynamodb"),
            spec.visibility_timeout_seconds,
            spec.max_receive_count,
        )
    except ConfigError as error:
        raise SystemExit(f"stage {args.stage}: {error}") from None


def dlq_command(args: argparse.Namespace, ops: Ops, out: IO[str], err: IO[str]) -> int:
    spec = QueueSpec.for_stage(args.stage, args.project_dir)
    sqs = ops.sqs
    dead_letter_url = sqs.get_queue_url(QueueName=spec.dead_letter_queue)["QueueUrl"]
    expected = approximate_count(sqs, dead_letter_url)
    selection = _selection(args)
    if args.action == "summary" or args.dry_run:
        progress = Progress("dlq scan", expected, err, args.progress_seconds)
        summary = summarize(sqs, dead_letter_url, selection, args.samples, args.hold, progress)
        print(summary.render(spec.dead_letter_queue, selection, datetime.now(UTC)), file=out)
        if args.dry_run:
            print(f"dry run: replay would send {summary.selected:,} messages", file=out)
        return 0
    filtered = bool(args.reason or args.event_type or args.rejected_at or args.limit is not None)
    method = args.method
    if method == "move-task" and (filtered or args.resend_in_doubt):
        raise SystemExit(
            "--method move-task moves every message: it takes no --reason, --event-type,"
            " --rejected-at, --limit or --resend-in-doubt"
        )
    journal = Journal(
        args.journal or args.project_dir / REPLAY_DIR / f"{spec.dead_letter_queue}.journal"
    )
    if method == "auto":
        # An interrupted journalled run's leftovers (sent, or in doubt) would be moved a
        # second time by a move task: the journalled path settles them and replays the rest.
        method = "journal" if filtered or args.resend_in_doubt or journal.entries else "move-task"
        if journal.entries and not (filtered or args.resend_in_doubt):
            print(
                f"an earlier replay left {len(journal.entries)} messages in its journal:"
                " replaying with the journalled path, which settles them",
                file=err,
            )
    in_doubt = _in_doubt(args, ops, spec)
    events_url = sqs.get_queue_url(QueueName=spec.events_queue)["QueueUrl"]
    try:
        # Ctrl-C / SIGTERM finish the batch in flight instead of cutting it in half.
        with journal.lock(), stop_on_signals(notice=STOPPING, second_aborts=True) as stop:
            if method == "move-task":
                status = _move(
                    args, ops, journal, dead_letter_url, events_url, stop, out, err, in_doubt
                )
                if status is not None:
                    return status
                print("replaying with the journalled path instead", file=err)
            progress = Progress("dlq replay", expected, err, args.progress_seconds)
            print(f"replaying {selection.describe()} from {spec.dead_letter_queue}", file=err)
            report = replay(
                sqs,
                dead_letter_url,
                events_url,
                journal,
                selection,
                include_invalid=args.include_invalid,
                limit=args.limit,
                hold_seconds=args.hold,
                progress=progress,
                stop=stop,
                send_sqs=ops.sqs_single_attempt,
                resend_in_doubt=args.resend_in_doubt,
                in_doubt=in_doubt,
            )
    except JournalBusyError as error:
        raise SystemExit(str(error)) from None
    print(report.render(spec.dead_letter_queue, spec.events_queue), file=out)
    return 1 if report.incomplete() else 0


def _move(
    args: argparse.Namespace,
    ops: Ops,
    journal: Journal,
    dead_letter_url: str,
    events_url: str,
    stop: threading.Event,
    out: IO[str],
    err: IO[str],
    in_doubt: InDoubtResolver,
) -> int | None:
    """The whole queue by an SQS move task; None when SQS cannot run one here (auto falls
    back to the journalled path then). First settles what a journalled run left behind."""
    spec = QueueSpec.for_stage(args.stage, args.project_dir)
    sqs = ops.sqs
    if journal.entries:
        print("finishing what an earlier journalled replay left", file=err)
        settled = replay(
            sqs,
            dead_letter_url,
            events_url,
            journal,
            hold_seconds=args.hold,
            finish_only=True,
            send_sqs=ops.sqs_single_attempt,
            in_doubt=in_doubt,
        )
        print(settled.render(spec.dead_letter_queue, spec.events_queue), file=out)
    blocked = blocking_entries(
        journal, time.time(), f'make ops ARGS="dlq replay --stage {args.stage}"'
    )
    if blocked:
        print(f"not starting an SQS move task: {blocked}", file=out)
        return 1
    try:
        moved = move_all(sqs, dead_letter_url, events_url, stop, err, args.rate, args.poll_seconds)
    except MoveTaskUnavailableError as error:
        if args.method == "move-task":
            raise SystemExit(f"SQS cannot run a move task here: {error}") from None
        print(f"SQS cannot run a move task here ({error})", file=err)
        return None
    print(moved.render(spec.dead_letter_queue, spec.events_queue), file=out)
    return 1 if moved.incomplete() else 0


# url --------------------------------------------------------------------------------------


def deployment(args: argparse.Namespace, ops: Ops) -> Deployment:
    """Where the stage is: the stack --stack-name, else the stack <app>-<stage> if there is
    one, else the names chalice deploy gives (devtools/deploy/verify.py)."""
    return find_deployment(
        args.stage, args.project_dir, ops.sqs, ops.client("cloudformation"), args.stack_name
    )


def api_url(args: argparse.Namespace, ops: Ops, found: Deployment | None = None) -> str:
    """The stage's base URL ending in `/`: --api-url, the stack's EndpointURL output (the
    stack --stack-name, else <app>-<stage> if it exists), or what `chalice url` says."""
    if args.api_url:
        url = str(args.api_url)
    else:
        found = found or deployment(args, ops)
        if found.stack_name is not None:
            if found.api_url is None:
                raise SystemExit(f"stack {found.stack_name} has no EndpointURL output")
            url = found.api_url
        else:
            url = chalice_url(args)
    return url if url.endswith("/") else url + "/"


def chalice_url(args: argparse.Namespace) -> str:
    result = subprocess.run(
        [tool("chalice"), "--project-dir", str(args.project_dir), "url", "--stage", args.stage],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(
            f"chalice url --stage {args.stage} found no deployed API and there is no stack"
            f" {default_stack_name(args.stage, args.project_dir)}"
            f" ({result.stderr.strip()}); pass --api-url or --stack-name"
        )
    return result.stdout.strip()


def example_hit(base: str, policy: HitPolicy) -> str:
    """A filled-in hit as the kit's tag would send it, checked with the stage's own rules."""
    query: list[tuple[str, str]] = [
        ("event", "purchase"),
        ("endpoint_id", "0f8fad5b-d9cb-469f-a165-70867728950e"),
        ("event_id", "7c9e6679-7425-40de-944b-e07fc1f90ae7"),
        ("evat_product", "running shoes & socks"),
        ("evmt_price", "49.90"),
    ]
    query += [
        (parameter, "en" if parameter.startswith(("usat_", "enat_")) else "1")
        for parameter, _ in ops_gtm.profile_parameters(policy)
    ]
    url = f"{base}events?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}"
    params: dict[str, list[str]] = {}
    for name, value in query:
        params.setdefault(name, []).append(value)
    parse_hit(params, policy, datetime.now(UTC))  # raises if the stage would refuse it
    return url


def url_command(args: argparse.Namespace, ops: Ops, out: IO[str], err: IO[str]) -> int:
    try:
        policy = HitPolicy.from_env(stage_environment(args.stage, args.project_dir))
    except ConfigError as error:
        raise SystemExit(f"stage {args.stage}: {error}") from None
    events: tuple[str, ...] = ()
    if args.container or args.events is not None:
        if args.events is None:
            raise SystemExit(
                "--container needs --events: the data-layer event names the container's"
                " trigger fires on, e.g. --events purchase,signup (never every event)"
            )
        try:
            events = ops_gtm.event_names(args.events)
        except ops_gtm.EventNamesError as error:
            raise SystemExit(str(error)) from None
    base = api_url(args, ops)
    template = ops_gtm.TAG_URL.replace(f"{{{{{ops_gtm.API_URL_VARIABLE}}}}}", base)
    lines = [
        f"GTM Custom Image tag, Image URL for stage {args.stage}:",
        f"  {template}",
        "  (Enable cache busting: on, parameter gtmcb. The variables come with"
        f" {ops_gtm.CONTAINER_FILE}.)",
        "",
        f"Profile parameters stage {args.stage} accepts (any other is refused with 400):",
    ]
    allowed = list(ops_gtm.profile_parameters(policy))
    lines += [f"  {parameter:<28} from dataLayer {source}" for parameter, source in allowed]
    if not allowed:
        lines.append("  none: hits record events only (ALLOWED_* settings are empty)")
    try:
        example = example_hit(base, policy)
    except HitRefusedError as error:  # a stage whose rules refuse even the example
        example = f"(the stage refuses the example hit: {error})"
    lines += ["", "Example hit with sample values (passes this stage's rules):", f"  {example}"]
    if args.container:
        path = ops_gtm.write_container(args.container, base, policy, events)
        lines += [
            "",
            f"Wrote {path}: import it in GTM (Admin > Import Container, Merge).",
            f"  Its trigger fires on these events only: {', '.join(events)}.",
        ]
    else:
        lines += [
            "",
            "A container with this URL and these attributes filled in, ready to import"
            " (--events: the data-layer events to send):",
            f'  make ops ARGS="url --stage {args.stage} --events purchase,signup --container'
            f" pixel-relay-{args.stage}.json"
            + (f" --api-url {base}" if args.api_url else "")
            + '"',
        ]
    print("\n".join(lines), file=out)
    return 0


# check ------------------------------------------------------------------------------------


def check_plan(args: argparse.Namespace, ops: Ops) -> CheckPlan:
    environment = stage_environment(args.stage, args.project_dir)
    try:
        settings = Settings.from_env(environment)
        registry.configure(settings.destinations, environment)
    except ConfigError as error:
        raise SystemExit(f"stage {args.stage}: {error}") from None
    # Each configured destination's probe (its plug-in's `probe` hook), or None where it
    # cannot be read back: there the check proves the event left the events queue.
    probes: dict[str, DeliveryProbe | None] = {}
    for name in registry.configured_names(environment):
        hook = registry.plugin(name).probe
        probes[name] = hooks.attribute(hook, name)(environment, ops.client) if hook else None
    found = deployment(args, ops) if not args.api_url else None
    return CheckPlan(
        api_url=api_url(args, ops, found),
        sqs=ops.sqs,
        # The stack's queues, else the stage's (the same names on both paths).
        dead_letter_queue=found.dead_letter_queue if found else settings.dead_letter_queue,
        events_queue=found.events_queue if found else settings.wiring.events_queue,
        probes=probes,
        stage=args.stage,
        timeout_seconds=args.timeout,
        referer=args.referer,
        verify_command=f"make verify STAGE={args.stage}"
        + (f' ARGS="--stack-name {args.stack_name}"' if args.stack_name else ""),
        consumer=found.consumer if found else f"pixel-relay-{args.stage}-deliver",
    )


def check_command(args: argparse.Namespace, ops: Ops, out: IO[str], err: IO[str]) -> int:
    plan = check_plan(args, ops)
    print(f"checking stage {args.stage} at {plan.api_url}", file=out)
    return run_check(plan, out)


# Command line -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m devtools.ops",
        description="Operate a deployed pixel-relay stage (docs/operations.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def common(command: argparse.ArgumentParser) -> None:
        command.add_argument("--stage", required=True, help="stage in .chalice/config.json")
        command.add_argument("--project-dir", type=Path, default=ROOT, help=argparse.SUPPRESS)

    def api_source(command: argparse.ArgumentParser) -> None:
        group = command.add_mutually_exclusive_group()
        group.add_argument("--api-url", help="the stage's API base URL")
        group.add_argument(
            "--stack-name",
            help="the stage's CloudFormation stack (default: <app>-<stage> if it exists, else"
            " what chalice deploy recorded)",
        )

    dlq = commands.add_parser(
        "dlq",
        help="summarize or replay the dead-letter queue",
        description="summary (default): counts by reason, event type and stage, oldest age."
        " replay: send selected messages back to the events queue, none lost, none twice,"
        " also when interrupted (docs/operations.md).",
    )
    dlq.add_argument("action", nargs="?", choices=("summary", "replay"), default="summary")
    common(dlq)
    dlq.add_argument("--samples", type=int, default=0, help="show N message bodies")
    dlq.add_argument("--reason", action="append", help="rejection_reason contains TEXT")
    dlq.add_argument("--event-type", action="append", help="event type is T")
    dlq.add_argument(
        "--rejected-at",
        action="append",
        help=f"rejected_at_stage is S ({', '.join(registry.known())}, pinpoint:profile,"
        " decode, routing; redrive: moved by the redrive policy)",
    )
    dlq.add_argument("--limit", type=int, help="replay at most N messages")
    dlq.add_argument("--dry-run", action="store_true", help="count what replay would send")
    dlq.add_argument(
        "--include-invalid",
        action="store_true",
        help="also replay bodies that are not valid event messages",
    )
    dlq.add_argument(
        "--hold",
        type=int,
        default=DEFAULT_HOLD_SECONDS,
        help="seconds each message stays hidden while a scan runs (default %(default)s)",
    )
    dlq.add_argument(
        "--method",
        choices=("auto", "move-task", "journal"),
        default="auto",
        help="replay by an SQS move task (every message; auto picks it when nothing is"
        " filtered) or by this tool with its journal (any selection); default %(default)s",
    )
    dlq.add_argument(
        "--resend-in-doubt",
        action="store_true",
        help="also send messages whose earlier send got no answer (each may then arrive twice)",
    )
    dlq.add_argument(
        "--rate", type=int, help="move task: messages per second (SQS picks one by default)"
    )
    dlq.add_argument("--journal", type=Path, help=argparse.SUPPRESS)
    dlq.add_argument(
        "--poll-seconds", type=float, default=MOVE_POLL_SECONDS, help=argparse.SUPPRESS
    )
    dlq.add_argument("--progress-seconds", type=float, default=2.0, help=argparse.SUPPRESS)

    url = commands.add_parser("url", help="print the GTM Image URL for a stage")
    common(url)
    api_source(url)
    url.add_argument("--container", type=Path, help="also write a GTM container to import")
    url.add_argument(
        "--events",
        help="with --container: the event names its trigger fires on, comma-separated"
        " (e.g. purchase,signup)",
    )

    check = commands.add_parser(
        "check",
        help="send a test hit and follow it to each configured destination",
        description="Send a test hit as a browser does, then follow the test event to each"
        " destination in DESTINATIONS: found there where its plug-in can read it back,"
        " otherwise seen leaving the events queue without being parked"
        " (docs/operations.md#end-to-end-check).",
    )
    common(check)
    api_source(check)
    check.add_argument("--timeout", type=float, default=180.0, help="seconds to wait")
    check.add_argument(
        "--referer", help="a page of your site, sent as Referer (stages with an origin allowlist)"
    )
    forget.add_parser(commands, common)
    return parser.parse_args(argv)


def main(
    argv: Sequence[str] | None = None,
    ops: Ops | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    args = parse_args(argv)
    if ops is None:
        aws_region()  # AWS_REGION works too, and a profile's region (devtools.process)
        ops = Ops()
    out = out or sys.stdout
    err = err or sys.stderr
    commands = {
        "dlq": dlq_command,
        "url": url_command,
        "check": check_command,
        "forget": forget.forget_command,
    }
    try:
        return commands[args.command](args, ops, out, err)
    except (ClientError, BotoCoreError, OSError) as error:  # one line, no traceback
        print(f"{args.command}: {one_line(error)}", file=err)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""`make ops ARGS="forget ..."` end to end, on a stage with every destination and erasure on:
moto for SQS, DynamoDB and the AWS services it serves, the stand-ins for Customer Profiles
and Pinpoint, each destination's dry-run double reading back what it received, the real
pixel and the real consumer (the local event source mapping).

A visitor (endpoint id E, user id U) has events delivered, parked, replayed, requeued for
one destination, queued, and resent within a batch; someone else has events beside theirs.
After `forget --endpoint-id E --user-id U`, nothing of the visitor arrives anywhere (only the
erasure records the stream destinations are sent), their profile, endpoints and dead
letters are gone, the other visitor's are all there, and a second run does nothing."""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest

from chalicelib import runtime
from chalicelib.destinations import registry
from devtools.api_gateway import pixel_event
from devtools.deploy.erasure_table import ensure_erasure_table
from devtools.deploy.queues import ensure_queues
from devtools.localstack.doubles import Running, Setup, double
from devtools.localstack.event_source import LocalEventSourceMapping
from devtools.offline import REGION
from devtools.ops import cli as ops
from devtools.queue_spec import QueueSpec, chalice_config, stage_environment
from devtools.standins.customer_profiles import ProfilesStandIn
from devtools.standins.pinpoint import PinpointStandIn
from tests.devtools.ops.dead_letters import approximate, everything_on

STAGE = "dev"
E, E2, U = "visitor-endpoint", "visitor-phone", "visitor-user"
OTHER = "someone-else"
BROWSER = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/156.0.0.0 Safari/537.36",
    "Accept": "image/avif,image/webp,image/*,*/*;q=0.8",
}


@dataclass
class Stage:
    project: Path
    sqs: Any
    events_url: str
    dead_letter_url: str
    running: dict[str, Running]
    received: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def hit(self, event_type: str, event_id: str, endpoint: str, user: str | None = None) -> None:
        from app import app

        query = {"event": event_type, "endpoint_id": endpoint, "event_id": event_id}
        if user is not None:
            query["user_id"] = user
        answer = app(pixel_event(urlencode(query), BROWSER), None)
        assert answer["statusCode"] == 200, answer

    def consumer(self) -> LocalEventSourceMapping:
        from app import deliver

        return LocalEventSourceMapping(
            self.sqs, self.events_url, handler=lambda event: deliver(event, None), batch_size=100
        )

    def read_back(self) -> dict[str, list[str]]:
        """Event ids each destination received since the last read ("" for an erasure)."""
        for running in self.running.values():
            if running.read_back is not None:
                running.read_back()
        arrived = {name: list(ids) for name, ids in self.received.items()}
        self.received.clear()
        return arrived

    def profiles(self) -> ProfilesStandIn:
        standin = self.running["customer-profiles"].standin
        # The dry run's double pairs it with the campaigns stand-in.
        profiles = getattr(standin, "profiles", standin)
        assert isinstance(profiles, ProfilesStandIn)
        return profiles

    def pinpoint(self) -> PinpointStandIn:
        standin = self.running["pinpoint"].standin
        assert isinstance(standin, PinpointStandIn)
        return standin

    def forget(self, *ids: str) -> tuple[int, str]:
        out = io.StringIO()
        status = ops.main(
            [
                "forget",
                "--stage",
                STAGE,
                *ids,
                "--project-dir",
                str(self.project),
                "--journal",
                str(self.project / "journal"),
                "--in-flight-seconds",
                "0",
            ],
            out=out,
            err=io.StringIO(),
        )
        return status, out.getvalue()


@pytest.fixture
def stage(tmp_path: Path, moto: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stage]:
    project = tmp_path / "project"
    (project / ".chalice").mkdir(parents=True)
    config = chalice_config()
    config["stages"][STAGE]["environment_variables"].update(
        DESTINATIONS=",".join(registry.known()),
        ERASURE_TABLE="pixel-relay-dev-erasure",
        ALLOW_ANONYMOUS_USER_ID="true",
    )
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    environment = stage_environment(STAGE, project)
    sqs = boto3.client("sqs", endpoint_url=moto, region_name=REGION)
    events, dead_letters = ensure_queues(sqs, QueueSpec.for_stage(STAGE, project))
    dynamodb = boto3.client("dynamodb", endpoint_url=moto, region_name=REGION)
    ensure_erasure_table(dynamodb, environment)
    received: dict[str, list[str]] = defaultdict(list)
    running: dict[str, Running] = {}
    try:
        for name in registry.known():

            def receive(
                endpoint: str, event_id: str, event: Any, raw: Any, name: str = name
            ) -> None:
                received[name].append(event_id)

            setup = Setup(environment, "127.0.0.1", 0, moto, receive)
            running[name] = double(name).start(setup)
        for variable, value in environment.items():
            monkeypatch.setenv(variable, value)
        for started in running.values():
            for variable, value in started.environment.items():
                monkeypatch.setenv(variable, value)
        runtime.reset()
        yield Stage(project, sqs, events.url, dead_letters.url, running, received)
    finally:
        for started in running.values():
            if started.standin is not None:
                started.standin.stop()


def theirs(ids: list[str]) -> list[str]:
    return [i for i in ids if i.startswith("v-")]


def test_a_forgotten_visitor_arrives_nowhere_and_a_second_run_does_nothing(stage: Stage) -> None:
    consumer = stage.consumer()
    every = set(registry.known())
    # The destinations whose double reads back a stream (erasure records arrive there).
    streams = {name for name in every if stage.running[name].read_back is not None}
    # Delivered everywhere.
    stage.hit("view", "v-1", E, user=U)
    stage.hit("view", "w-1", OTHER)
    consumer.drain()
    assert {name: sorted(ids) for name, ids in stage.read_back().items()} == {
        name: ["v-1", "w-1"] for name in every
    }
    # Parked: Customer Profiles refuses two event types; the others record them.
    stage.profiles().reject_events("broken")
    stage.profiles().reject_events("alsobroken")
    for event_type, number in (("broken", 2), ("alsobroken", 3)):
        stage.hit(event_type, f"v-{number}", E, user=U)
        stage.hit(event_type, f"w-{number}", OTHER)
    consumer.drain()
    assert approximate(stage.sqs, stage.dead_letter_url) == 4
    # Requeued: Pinpoint fails every attempt of one call; a copy goes back for it alone.
    stage.hit("view", "v-6", E, user=U)
    stage.pinpoint().fail_next_requests(500, count=3)
    consumer.poll()
    # Replayed: the "broken" ones go back to the events queue (the others stay parked).
    replayed = io.StringIO()
    ops.main(
        [
            "dlq",
            "replay",
            "--stage",
            STAGE,
            "--event-type",
            "broken",
            "--method",
            "journal",
            "--project-dir",
            str(stage.project),
            "--journal",
            str(stage.project / "journal"),
        ],
        out=replayed,
        err=io.StringIO(),
    )
    assert "replayed 2 messages" in replayed.getvalue()
    # Queued: new hits, one of them twice (a resend), one from another device of U's.
    stage.hit("view", "v-4", E)
    stage.hit("view", "v-4", E)
    stage.hit("view", "v-5", E2, user=U)
    stage.hit("view", "w-4", OTHER)
    before = stage.read_back()
    assert sorted(before["customer-profiles"]) == ["v-6"]
    assert "v-6" not in before["pinpoint"]  # its copy waits on the queue, for Pinpoint only
    # Waiting: the requeued copy, two replayed, four new (a resend among them).
    assert approximate(stage.sqs, stage.events_url) == 7

    status, output = stage.forget("--endpoint-id", E, "--user-id", U)
    assert status == 0, output
    lines = output.splitlines()
    assert (
        f"  suppression list pixel-relay-dev-erasure: endpoint id {E} added: the consumer" in output
    )
    # U's profile held their signed-in v-1 and v-6 (v-2, v-3 were refused there); E's own
    # anonymous profile had nothing yet (v-4 is still queued).
    assert lines[4] == "  customer-profiles: nothing left: no profile found by pixelRelayEndpointId"
    assert "  customer-profiles: 2 object(s) and 1 profile(s) deleted" in lines
    assert "  pinpoint: endpoint deleted" in lines
    assert "  pinpoint: 1 endpoint(s) of the user deleted" not in lines  # E was U's only one
    for name in streams:
        assert lines.count(f"  {name}: erasure record sent") == 2  # one per id
    dead_letters = "dead-letter queue pixel-relay-dev-events-dlq:"
    assert f"{dead_letters} 1 message(s) of theirs deleted (2 messages read)" in lines
    assert lines[-1] == "done"

    # What was queued, replayed and requeued for them is dropped; the other visitor's arrives.
    consumer.drain()
    after = stage.read_back()
    for name in every:
        assert theirs(after.get(name, [])) == [], name
    # The replayed w-2 was parked for Customer Profiles alone, which refuses it again.
    for name in streams:
        assert sorted(after[name]) == ["", "", "w-4"]  # two erasure records
    assert after["pinpoint"] == after["customer-profiles"] == ["w-4"]
    # Nothing of theirs is left in the places pixel-relay writes to.
    stored = stage.profiles().stored_objects("pixel-relay-dev", "PixelRelayEvent")
    assert sorted(o["event_id"] for o in stored) == ["w-1", "w-4"]
    assert set(stage.pinpoint().endpoints("dev-application")) == {OTHER}
    bodies = everything_on(stage.sqs, stage.dead_letter_url)  # taken off: put back below
    assert sorted(json.loads(body)["event_id"] for body in bodies) == ["w-2", "w-3"]

    # Everything again: nothing done, nothing sent, and it says so.
    for body in bodies:
        stage.sqs.send_message(QueueUrl=stage.dead_letter_url, MessageBody=body)
    requests = len(stage.profiles().requests)
    status, output = stage.forget("--endpoint-id", E, "--user-id", U)
    assert status == 0, output
    lines = output.splitlines()
    assert "on it since" in lines[1]
    assert "  customer-profiles: nothing left: no profile found by pixelRelayEndpointId" in lines
    assert "  pinpoint: nothing left: no such endpoint" in lines
    for name in streams:
        earlier = f"  {name}: erasure record sent on an earlier run"
        assert sum(line.startswith(earlier) for line in lines) == 2
    assert f"{dead_letters} nothing left (2 messages read)" in lines
    new_requests = stage.profiles().requests[requests:]
    assert {r.operation for r in new_requests} == {"SearchProfiles"}
    consumer.drain()
    assert stage.read_back() == {}

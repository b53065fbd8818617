"""Adding a destination is one module in chalicelib/destinations/ (listed in the registry)
plus its dry-run double, and nothing else: the app, `make policies` and the dry run all pick
it up from its `SPEC`. Proved with a throwaway "null" destination defined here."""

from __future__ import annotations

import sys
import time
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chalicelib.config import Settings
from chalicelib.destinations import registry
from chalicelib.destinations.base import Destination, DestinationSpec, Statement, own_arn
from chalicelib.env import ConfigError
from chalicelib.events import Event
from chalicelib.outcomes import DELIVERED, Outcome, TimeLeft
from devtools.deploy.policies import consumer_policy, for_chalice
from devtools.localstack import doubles
from devtools.localstack.doubles import Running, Setup
from devtools.localstack.dry_run import DryRun
from devtools.queue_spec import stage_environment

# The null destination: what chalicelib/destinations/null.py would hold. -----------------


@dataclass(frozen=True)
class NullSettings:
    sink: str
    timeout_seconds: int = 10

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> NullSettings:
        sink = environ.get("NULL_SINK", "").strip()
        if not sink:
            raise ConfigError("NULL_SINK", "is required; set it in .chalice/config.json")
        return cls(sink)


class NullDestination:
    """Keeps each event's record in its "client", a list standing in for the service."""

    name = "null"

    def __init__(self, client: list[dict[str, Any]]) -> None:
        self._client = client

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        self._client.extend(dict(event.to_record()) for event in events)
        return [DELIVERED] * len(events)


SERVICE: list[dict[str, Any]] = []  # what the null "service" has received


def null_statements(settings: NullSettings) -> list[Statement]:
    return [
        {
            "Sid": "WriteNull",
            "Effect": "Allow",
            "Action": ["null:Put"],
            "Resource": own_arn("null", f"sink/{settings.sink}"),
        }
    ]


NULL_SPEC = DestinationSpec(
    name="null",
    settings=NullSettings,
    from_env=NullSettings.from_env,
    client=lambda settings: SERVICE,
    destination=lambda client, settings: NullDestination(client),
    iam_statements=null_statements,
)

# Its double: what devtools/localstack/doubles/null.py would hold. -------------------------


def start_null(setup: Setup) -> Running:
    def read_back() -> None:
        while SERVICE:
            record = SERVICE.pop(0)
            setup.receive_record(record, record)

    return Running({"AWS_ENDPOINT_URL_NULL": "http://127.0.0.1:9"}, read_back=read_back)


@pytest.fixture
def null_destination(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The two modules as if their files existed, and the destination's registry entry."""
    destination = types.ModuleType("chalicelib.destinations.null")
    destination.SPEC = NULL_SPEC  # type: ignore[attr-defined]
    double = types.ModuleType("devtools.localstack.doubles.null")
    double.start = start_null  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, destination.__name__, destination)
    monkeypatch.setitem(sys.modules, double.__name__, double)
    monkeypatch.setattr(registry, "MODULES", (*registry.MODULES, destination.__name__))
    SERVICE.clear()
    yield
    SERVICE.clear()


def event(number: int) -> Event:
    return Event(
        f"e-{number}",
        "signup",
        "ep-1",
        "2026-11-28T11:00:00.000Z",
        "2026-11-28T11:00:01.000Z",
        attributes={"plan": "a"},
    )


# The claim ---------------------------------------------------------------------------------


def test_the_app_builds_and_delivers_to_a_new_destination(null_destination: None) -> None:
    environment = {**stage_environment("dev"), "DESTINATIONS": "pinpoint,null", "NULL_SINK": "s"}
    assert Settings.from_env(environment).destinations == ("pinpoint", "null")
    settings = registry.settings_for(("null",), environment)["null"]
    built: Destination = registry.create("null", settings)
    assert built.deliver([event(1)]) == [DELIVERED]
    assert [record["event_id"] for record in SERVICE] == ["e-1"]


def test_a_new_destinations_settings_fail_fast_naming_its_variable(null_destination: None) -> None:
    with pytest.raises(ConfigError, match="NULL_SINK: is required"):
        registry.settings_for(("null",), {})


def test_make_policies_grants_a_new_destination_its_own_statements(
    null_destination: None,
) -> None:
    environment = {
        "EVENTS_QUEUE": "q",
        "DEAD_LETTER_QUEUE": "dlq",
        "PINPOINT_APPLICATION_ID": "app",
        "DESTINATIONS": "null,pinpoint",
        "NULL_SINK": "orders",
    }
    sids = [s.get("Sid") for s in consumer_policy(environment, "deliver")["Statement"]]
    # In the registry's order, whatever the order of DESTINATIONS.
    assert sids[-2:] == ["RecordEvents", "WriteNull"]
    statements = consumer_policy(environment, "deliver")["Statement"]
    [null] = [s for s in statements if s.get("Sid") == "WriteNull"]
    assert null["Resource"] == own_arn("null", "sink/orders")
    written_statements = for_chalice({"Statement": statements})["Statement"]
    [written] = [s for s in written_statements if s.get("Sid") == "WriteNull"]
    assert written["Resource"] == "arn:*:null:*:*:sink/orders"  # as the committed file says it


def test_the_dry_run_reads_back_a_new_destination(null_destination: None, tmp_path: Path) -> None:
    lines: list[str] = []
    dry_run = DryRun(("null",), {"NULL_SINK": "s"}, tmp_path / "log.jsonl", lines.append, "", "")
    environment = dry_run.start()
    try:
        assert environment == {"AWS_ENDPOINT_URL_NULL": "http://127.0.0.1:9"}
        registry.create("null", NullSettings("s")).deliver([event(2)])
        deadline = time.monotonic() + 10
        while not dry_run.delivered("null") and time.monotonic() < deadline:
            time.sleep(0.05)
        [record] = dry_run.delivered("null")
        assert (record["event_id"], record["event"]["EventType"]) == ("e-2", "signup")
        assert lines == [
            'null <- signup endpoint=ep-1 attrs={"plan": "a"} metrics={}'
            " at=2026-11-28T11:00:00.000Z"
        ]
    finally:
        dry_run.stop()
    assert '"destination": "null"' in (tmp_path / "log.jsonl").read_text()


# Every destination keeps the promise ------------------------------------------------------


@pytest.mark.parametrize("name", registry.known())
def test_every_destination_describes_itself_and_has_a_dry_run(name: str) -> None:
    """What `make dev --destinations <name>` and `make policies` need, on the dev stage."""
    spec = registry.spec(name)
    assert spec.name == name
    settings = spec.from_env(stage_environment("dev"))
    assert isinstance(settings, spec.settings)
    statements = spec.iam_statements(settings)
    assert statements
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert statement["Sid"]
        assert statement["Action"]
        assert statement["Resource"]
        assert not any(action.endswith("*") for action in statement["Action"])
    assert spec.create(settings).name == name  # no AWS call: boto3 connects on use
    assert callable(doubles.double(name).start)


def test_a_destination_without_a_dry_run_says_which_module_to_add(
    null_destination: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "devtools.localstack.doubles.null")
    with pytest.raises(LookupError, match=r"add devtools/localstack/doubles/null\.py"):
        doubles.double("null")


def test_a_module_whose_spec_has_another_name_is_refused(
    null_destination: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    misnamed = types.ModuleType("chalicelib.destinations.void")
    misnamed.SPEC = NULL_SPEC  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, misnamed.__name__, misnamed)
    monkeypatch.setattr(registry, "MODULES", (*registry.MODULES, misnamed.__name__))
    with pytest.raises(TypeError, match="SPEC, the DestinationSpec named 'void'"):
        registry.spec("void")

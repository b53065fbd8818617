"""Adding a destination is one module in chalicelib/destinations/ and one double, and nothing
else: the app, `make policies`, the CloudFormation template, the dry run and the bench all
pick it up from its plug-in. Proved with two throwaways (tests/devtools/throwaway/): archive,
an AWS service, and webhook, an HTTPS endpoint with a secret, which is no AWS service at
all. Their folder is put on the package's path as a new file would be; nothing lists them.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import chalicelib.destinations
from chalicelib import runtime
from chalicelib.config import Settings
from chalicelib.destinations import registry
from chalicelib.destinations.base import Destination, DestinationPlugin
from chalicelib.env import ConfigError
from chalicelib.outcomes import DELIVERED, Verdict
from devtools.deploy.policies import consumer_policy, for_chalice
from devtools.hooks import HookError
from devtools.localstack import doubles
from devtools.localstack.dry_run import DryRun
from devtools.queue_spec import stage_environment
from tests.devtools.deploy_fixtures import copy_project
from tests.factories import make_event

THROWAWAY = Path(__file__).parent / "throwaway" / "destinations"
NEW = ("archive", "webhook")
# The stage's settings; the dry run points WEBHOOK_URL at its double, as it points AWS
# clients at theirs.
SETTINGS = {
    "ARCHIVE_BUCKET": "pixel-relay-archive",
    "WEBHOOK_URL": "https://hooks.example/events",
    "WEBHOOK_SECRET": "s3cret",
}


@pytest.fixture
def new_destinations(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The throwaway modules where a new destination's file would be: on the package's path."""
    package = chalicelib.destinations
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(THROWAWAY)])
    yield
    for name in NEW:
        sys.modules.pop(registry.module_of(name), None)


def stage(**variables: str) -> dict[str, str]:
    """The dev stage's environment with the throwaways' settings and `variables`."""
    return {**stage_environment("dev"), **SETTINGS, **variables}


def sqs_event(count: int) -> dict[str, Any]:
    """An SQS batch of `count` events, as Lambda hands it to the consumer."""
    return {
        "Records": [
            {
                "messageId": f"m-{n}",
                "receiptHandle": f"r-{n}",
                "body": make_event(n, event_type="signup", attributes={"n": str(n)}).to_message(),
                "attributes": {"ApproximateReceiveCount": "1"},
                "eventSource": "aws:sqs",
            }
            for n in range(count)
        ]
    }


# Discovery ----------------------------------------------------------------------------------


def test_a_new_destination_is_known_by_its_file_and_imported_only_when_configured(
    new_destinations: None,
) -> None:
    assert set(NEW) <= set(registry.known())
    assert Settings.from_env(stage(DESTINATIONS="pinpoint,webhook")).destinations == (
        "pinpoint",
        "webhook",
    )
    assert registry.module_of("archive") not in sys.modules  # known, never imported
    [webhook] = registry.configure(("webhook",), stage())
    assert webhook.name == "webhook"
    assert registry.module_of("archive") not in sys.modules


def test_a_new_destinations_settings_fail_fast_naming_its_variable(
    new_destinations: None,
) -> None:
    with pytest.raises(ConfigError, match="ARCHIVE_BUCKET: is required"):
        registry.configure(("archive",), {})
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET: is required"):
        registry.configure(("webhook",), {"WEBHOOK_URL": "https://hooks.example/"})
    with pytest.raises(ConfigError, match="WEBHOOK_URL: must be an https:// URL"):
        registry.configure(("webhook",), {**SETTINGS, "WEBHOOK_URL": "http://hooks.example/"})


# The app and the dry run --------------------------------------------------------------------


def test_the_app_delivers_to_new_destinations_and_the_dry_run_reads_them_back(
    new_destinations: None,
    moto_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real consumer (`app.deliver`) sends to both, each served by its own double."""
    environment = stage(
        DESTINATIONS="archive,webhook", ARCHIVE_BUCKET=f"archive-{uuid.uuid4().hex[:12]}"
    )
    lines: list[str] = []
    dry_run = DryRun(NEW, environment, tmp_path / "log.jsonl", lines.append, moto_url, "127.0.0.1")
    endpoints = dry_run.start()
    try:
        assert set(endpoints) == {"AWS_ENDPOINT_URL_S3", "WEBHOOK_URL"}
        for name, value in {**environment, **endpoints}.items():
            monkeypatch.setenv(name, value)
        runtime.reset()
        from app import deliver

        assert deliver(sqs_event(3), None) == {"batchItemFailures": []}
        deadline = time.monotonic() + 10
        while len(dry_run.delivered()) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        for name in NEW:
            records = dry_run.delivered(name)
            assert sorted(r["event_id"] for r in records) == ["e-0", "e-1", "e-2"], name
            assert {r["event"]["EventType"] for r in records} == {"signup"}
    finally:
        dry_run.stop()
    assert '"destination": "webhook"' in (tmp_path / "log.jsonl").read_text()


def test_a_non_aws_destination_sends_its_secret_and_is_retried_when_refused(
    new_destinations: None, tmp_path: Path
) -> None:
    """Nothing at the seam is boto3-shaped: the webhook carries its own secret, and an
    endpoint that refuses it (401) or fails (503) costs a rejection or a retry, as any
    destination's answer does."""
    environment = stage(DESTINATIONS="webhook")
    dry_run = DryRun(("webhook",), environment, tmp_path / "log.jsonl", print, "", "127.0.0.1")
    endpoints = dry_run.start()
    try:
        configured = registry.plugin("webhook").configure({**environment, **endpoints})
        assert configured.iam_statements() == []
        assert type(configured).service is None
        sender = configured.create()
        assert sender.deliver([make_event(1)]) == [DELIVERED]
        dry_run.simulate_outage(1)
        [failed] = sender.deliver([make_event(2)])
        assert (failed.verdict, failed.reason) == (Verdict.RETRY, "webhook answered 500")
        wrong = registry.plugin("webhook").configure(
            {**environment, **endpoints, "WEBHOOK_SECRET": "guessed"}
        )
        [refused] = wrong.create().deliver([make_event(3)])
        assert (refused.verdict, refused.reason) == (Verdict.REJECTED, "webhook answered 401")
        assert [r["event_id"] for r in dry_run.delivered("webhook")] == ["e-1"]
    finally:
        dry_run.stop()


# Deploy -------------------------------------------------------------------------------------


def test_make_policies_grants_a_new_destination_its_own_statements(
    new_destinations: None,
) -> None:
    environment = {
        "EVENTS_QUEUE": "q",
        "DEAD_LETTER_QUEUE": "dlq",
        "PINPOINT_APPLICATION_ID": "app",
        "DESTINATIONS": "webhook,pinpoint,archive",
        **SETTINGS,
    }
    statements = consumer_policy(environment, "deliver")["Statement"]
    sids = [statement.get("Sid") for statement in statements]
    # In the registry's (sorted) order, whatever the order of DESTINATIONS; none for webhook.
    assert sids[-2:] == ["WriteArchive", "RecordEvents"]
    [archive] = [s for s in statements if s.get("Sid") == "WriteArchive"]
    assert archive["Resource"] == "arn:${AWS::Partition}:s3:::pixel-relay-archive/*"
    written = for_chalice({"Statement": statements})["Statement"]
    [rendered] = [s for s in written if s.get("Sid") == "WriteArchive"]
    assert rendered["Resource"] == "arn:*:s3:::pixel-relay-archive/*"  # as the file says it


def test_the_template_adds_what_a_new_destination_declares(
    new_destinations: None, tmp_path: Path
) -> None:
    from devtools.deploy.template import merge_template

    root = copy_project(tmp_path / "project")
    config_file = root / ".chalice" / "config.json"
    config = json.loads(config_file.read_text())
    config["stages"]["dev"]["environment_variables"].update(
        {"DESTINATIONS": "archive,webhook", **SETTINGS}
    )
    config_file.write_text(json.dumps(config))
    template = merge_template("dev", root)
    bucket = template["Resources"]["ArchiveBucket"]
    assert bucket["Type"] == "AWS::S3::Bucket"
    assert bucket["Properties"]["BucketName"] == "pixel-relay-archive"
    role = template["Resources"]["DeliverRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    assert "WriteArchive" in [statement["Sid"] for statement in role["Statement"]]


# The bench ----------------------------------------------------------------------------------


def test_the_bench_measures_a_new_destination_against_its_declared_target(
    new_destinations: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its figures are in the table with the plug-in's target, and the consumer's calls are
    counted through the real handler with its double in a process of its own."""
    from bench import consumer
    from bench.cli import destination_figures

    figures = {figure.label: figure for figure in destination_figures()}
    for name in NEW:
        calls = figures[f"downstream calls, {name} (per 1,000 events, batches of 500)"]
        assert calls.target == 2
        assert f"consumer cost, {name} (CPU ÷ botocore serialization)" in figures
    for name, value in SETTINGS.items():
        monkeypatch.setenv(name, value)
    bodies = [make_event(n).to_message() for n in range(1000)]
    measured = consumer.downstream_calls(bodies, "archive")
    assert measured["per_1000_events"] == 2
    assert measured["calls_by_operation"] == {"s3.PutObject": 2}


# Every destination keeps the promise --------------------------------------------------------


@pytest.mark.parametrize("name", registry.known())
def test_every_destination_describes_itself_and_has_a_dry_run(name: str) -> None:
    """What `make dev --destinations <name>`, `make policies` and the docs need, on the dev
    stage."""
    plugin = registry.plugin(name)
    assert issubclass(plugin, DestinationPlugin)
    assert plugin.variables
    for setting in plugin.variables:
        assert setting.variable.isupper()
        assert setting.meaning
    configured = plugin.configure(stage_environment("dev"))
    statements = configured.iam_statements()
    assert statements or plugin.service is None
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert statement["Sid"]
        assert statement["Action"]
        assert statement["Resource"]
        assert not any(action.endswith("*") for action in statement["Action"])
    created = configured.create()  # no AWS call: boto3 connects on use
    assert isinstance(created, Destination)
    assert created.name == name
    assert callable(doubles.double(name).start)


def test_a_destination_whose_double_is_missing_says_which_module_to_add(
    new_destinations: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = registry.plugin("archive")
    monkeypatch.setattr(plugin, "double", "devtools.localstack.doubles.archive")
    with pytest.raises(HookError, match=r"add devtools/localstack/doubles/archive\.py"):
        doubles.double("archive")


def test_a_module_whose_plugin_has_another_name_is_refused(
    new_destinations: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = registry.plugin("archive")
    monkeypatch.setattr(plugin, "name", "void")
    with pytest.raises(TypeError, match="PLUGIN is named 'void', its module says 'archive'"):
        registry.plugin("archive")

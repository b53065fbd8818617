"""`make dev` end to end: a real pixel hit travels through SQS to the dry-run destination."""

from __future__ import annotations

import json
import re
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chalicelib.destinations import registry
from devtools.localstack.runner import CodeWatcher
from tests.stack_harness import DELIVERY_SECONDS, STOP_SECONDS, banner_urls, get, local_stack


def test_a_hit_reaches_the_dry_run_and_a_refused_one_does_not(tmp_path: Path) -> None:
    log = tmp_path / "dry-run.jsonl"
    with local_stack("--exit-after", "120", "--dry-run-log", str(log)) as (process, output):
        pixel = banner_urls(output).pixel

        # Refused first: had it been queued, it would reach the destination before the good one.
        # The dry run is of the dev stage's DESTINATIONS: Customer Profiles, the default.
        status, content_type, body = get(f"{pixel}?endpoint_id=refused-endpoint&evat_x=1")
        assert status == 400
        assert content_type.startswith("text/plain")
        assert body.decode() == "event: is required\n"

        happened = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        status, content_type, body = get(
            f"{pixel}?event=purchase&endpoint_id=demo-endpoint&event_id=e-1&evat_product=shoes"
            f"&evmt_price=49.90&timestamp={int(happened.timestamp() * 1000)}&gtmcb=123"
        )
        assert status == 200
        assert content_type == "image/gif"
        assert body.startswith(b"GIF89a")

        delivered = output.wait_for(
            lambda line: line.startswith("customer-profiles <- "),
            DELIVERY_SECONDS,
            "a delivered event",
        )
        assert delivered == (
            'customer-profiles <- purchase endpoint=demo-endpoint attrs={"product": "shoes"}'
            f' metrics={{"price": 49.9}} at={happened:%Y-%m-%dT%H:%M:%S}.000Z'
        )
        output.wait_for(
            lambda line: line == "consumer: batch of 1: 1 done, 0 to retry",
            DELIVERY_SECONDS,
            "the consumer's batch",
        )
        profiles = [line for line in output.lines if line.startswith("customer-profiles <- ")]
        assert profiles == [delivered]  # the refused hit never reached the queue

        [record] = [json.loads(line) for line in log.read_text().splitlines()]
        assert record["event_id"] == "e-1"
        assert record["event"]["EventType"] == "purchase"
        assert record["destination"] == "customer-profiles"

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_SECONDS) == 0
        output.join(STOP_SECONDS)
        assert output.lines[-1] == "stopped"


def test_the_dry_run_covers_every_destination_at_once(tmp_path: Path) -> None:
    log = tmp_path / "dry-run.jsonl"
    arguments = ("--exit-after", "120", "--dry-run-log", str(log))
    everywhere = ",".join(registry.known())  # a new destination is covered as it is added
    with local_stack(*arguments, "--destinations", everywhere) as (
        process,
        output,
    ):
        pixel = banner_urls(output).pixel
        status, _, _ = get(f"{pixel}?event=signup&endpoint_id=fan-out&event_id=f-1&evat_plan=a")
        assert status == 200
        for destination in everywhere.split(","):
            line = output.wait_for(
                lambda line, d=destination: line.startswith(f"{d} <- "),  # type: ignore[misc]
                DELIVERY_SECONDS,
                f"the event at {destination}",
            )
            assert 'endpoint=fan-out attrs={"plan": "a"}' in line
        records = [json.loads(line) for line in log.read_text().splitlines()]
        assert sorted(r["destination"] for r in records) == sorted(everywhere.split(","))
        assert {r["event_id"] for r in records} == {"f-1"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_SECONDS) == 0


def test_exit_after_stops_cleanly_on_its_own() -> None:
    with local_stack("--exit-after", "0") as (process, output):
        urls = banner_urls(output)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/events", urls.pixel)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", urls.demo)
        assert process.wait(timeout=STOP_SECONDS) == 0
        output.join(STOP_SECONDS)
        assert output.lines[-1] == "stopped"


def test_code_watcher_notices_changes_to_the_deployed_code_only(tmp_path: Path) -> None:
    (tmp_path / "chalicelib").mkdir()
    (tmp_path / ".chalice").mkdir()
    module = tmp_path / "chalicelib" / "hits.py"
    module.write_text("A = 1\n")
    (tmp_path / "app.py").write_text("")
    (tmp_path / ".chalice" / "config.json").write_text("{}")
    watcher = CodeWatcher(tmp_path)
    assert not watcher.changed()

    (tmp_path / "README.md").write_text("docs")  # not code: no restart
    (tmp_path / "chalicelib" / "notes.txt").write_text("x")
    assert not watcher.changed()

    time.sleep(0.01)
    module.write_text("A = 2\n")
    assert watcher.changed()
    assert not watcher.changed()  # reported once
    (tmp_path / "chalicelib" / "new.py").write_text("")
    assert watcher.changed()

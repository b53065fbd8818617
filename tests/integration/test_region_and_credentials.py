"""The pixel finds its region as the tools do (AWS_REGION, AWS_DEFAULT_REGION, the profile),
and without a region or credentials answers its documented 503 "not recorded", logging the
fix once per hit: never Chalice's uncaught 500. In-process (the Lambda entry point) and as a
Chalice user runs it: plain `chalice local --stage dev`, a subprocess in a clean environment.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest

from chalicelib import runtime, telemetry
from devtools.api_gateway import beacon_event
from devtools.offline import HOST, isolated_environment
from devtools.queue_spec import QueueSpec
from tests.integration.harness import CHROMIUM_USER_AGENT, Pipeline, ProxyResponse, proxy_event

ROOT = Path(__file__).resolve().parents[2]
HIT = "event=view&endpoint_id=ep-1"
NOT_RECORDED = "event not recorded: queue unavailable, try again\n"
NO_REGION = "no AWS region: set AWS_REGION"
NO_CREDENTIALS = "no AWS credentials: set AWS_PROFILE"
CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def invoke(event: dict[str, object]) -> ProxyResponse:
    from app import app

    answer = app(event, None)
    body = answer["body"]
    raw = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()
    return ProxyResponse(answer["statusCode"], answer["headers"], raw)


def get() -> ProxyResponse:
    return invoke(proxy_event(HIT, {"User-Agent": CHROMIUM_USER_AGENT}))


def post() -> ProxyResponse:
    headers = {"User-Agent": CHROMIUM_USER_AGENT, "Content-Type": "text/plain"}
    return invoke(beacon_event(f"{HIT}\n{HIT}".encode(), headers))


def test_aws_region_alone_is_honoured(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """As the deploy tools and Lambda (which sets both) read it; boto3 reads only
    AWS_DEFAULT_REGION, so before this every hit was a 500 (NoRegionError)."""
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    runtime.reset()
    assert get().status == 200
    assert post().status == 200
    assert pipeline.queued() == 3


def test_aws_region_comes_before_aws_default_region(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")  # moto's queues are in us-east-1
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    runtime.reset()
    assert get().status == 200
    assert pipeline.queued() == 1


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The pixel's log lines as Powertools writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(telemetry.logger.registered_formatter)
    telemetry.logger.addHandler(handler)
    yield stream
    telemetry.logger.removeHandler(handler)  # type: ignore[attr-defined]


@pytest.mark.parametrize("missing", ["region", "credentials"])
def test_no_region_or_credentials_is_a_503_naming_the_fix(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, json_log: io.StringIO, missing: str
) -> None:
    names = ("AWS_REGION", "AWS_DEFAULT_REGION") if missing == "region" else CREDENTIALS
    for name in names:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it keeps the credentials it found
    runtime.reset()
    answer = get()
    assert (answer.status, answer.text) == (503, NOT_RECORDED)
    beacon = post()
    assert beacon.status == 503
    assert json.loads(beacon.body)["unavailable"] == [1, 2]
    fix = NO_REGION if missing == "region" else NO_CREDENTIALS
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    naming_the_fix = [line["message"] for line in lines if fix in line.get("error", "")]
    assert naming_the_fix[-2:] == ["hit not enqueued", "beacon lines not enqueued"]
    assert pipeline.queued() == 0


# Plain `chalice local`, as a Chalice user runs it ------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def plain_environment() -> dict[str, str]:
    """A shell with nothing of AWS set: no region, no credentials, no profile, no endpoint,
    none of the stage's variables (chalice local injects those from .chalice/config.json)."""
    kept = {"PATH", "HOME", "LANG", "TMPDIR"}
    clean = {name: value for name, value in os.environ.items() if name in kept}
    clean.update(
        {
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    return clean


@contextmanager
def chalice_local_process(environment: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """`chalice local --stage dev` on a free port; its URL and its output."""
    port = free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"chalice-local-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                *(str(Path(sys.executable).parent / "chalice"), "local", "--stage", "dev"),
                *("--host", HOST, "--port", str(port), "--no-autoreload"),
            ],
            cwd=ROOT,
            env={**environment, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://{HOST}:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/", timeout=1)
            except urllib.error.HTTPError:
                break  # answering
            except OSError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield url, log
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.unlink(missing_ok=True)


def local_hit(url: str) -> tuple[int, str]:
    request = urllib.request.Request(
        f"{url}/events?{HIT}", headers={"User-Agent": CHROMIUM_USER_AGENT}
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            return answer.status, answer.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.parametrize(
    ("setting", "fix"),
    [({}, NO_REGION), ({"AWS_REGION": "eu-west-2"}, NO_CREDENTIALS)],
    ids=["nothing-set", "aws-region-only"],
)
def test_plain_chalice_local_answers_503_and_names_the_fix(
    plain_environment: dict[str, str], setting: dict[str, str], fix: str
) -> None:
    with chalice_local_process({**plain_environment, **setting}) as (url, log):
        assert local_hit(url) == (503, NOT_RECORDED)
        output = log.read_text()
        assert fix in output, output
        assert "Traceback" not in output, output


def test_plain_chalice_local_records_to_the_local_queue(
    plain_environment: dict[str, str], moto_url: str
) -> None:
    """docs/local-development.md: a queue on loopback (here moto's), fake credentials."""
    spec = QueueSpec.for_stage("dev")
    sqs = boto3.client("sqs", endpoint_url=moto_url, region_name="us-east-1")
    url = sqs.create_queue(QueueName=spec.events_queue)["QueueUrl"]
    sqs.purge_queue(QueueUrl=url)
    environment = {
        **isolated_environment(plain_environment),
        "AWS_ENDPOINT_URL_SQS": moto_url,
    }
    with chalice_local_process(environment) as (pixel, _):
        assert local_hit(pixel) == (200, "image/gif")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["endpoint_id"] for m in messages] == ["ep-1"]

"""What stands before a hit's parameters: bots, page origins and signed hits, end to end."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from chalicelib import runtime
from chalicelib.signing.verify import ENDPOINT_CLAIM, USER_CLAIM
from tests.integration.harness import CHROMIUM_USER_AGENT, Pipeline, ProxyResponse, proxy_event

SECRET = "a-development-secret-of-at-least-32-bytes!"
HIT = "event=purchase&endpoint_id=ep-1"


def hit(query: str, **headers: str) -> ProxyResponse:
    from app import app

    answer = app(proxy_event(query, {k.replace("_", "-"): v for k, v in headers.items()}), None)
    body = base64.b64decode(answer["body"]) if answer.get("isBase64Encoded") else answer["body"]
    return ProxyResponse(answer["statusCode"], answer["headers"], body)


def configure(monkeypatch: pytest.MonkeyPatch, **settings: str) -> None:
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    runtime.reset()


def token(endpoint_id: str, user_id: str | None = None, lifetime: int = 300) -> str:
    claims: dict[str, object] = {ENDPOINT_CLAIM: endpoint_id, "exp": int(time.time()) + lifetime}
    if user_id is not None:
        claims[USER_CLAIM] = user_id
    return jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "k1"})


@pytest.mark.parametrize(
    ("user_agent", "reason"),
    [
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", "crawler"),
        ("curl/8.5.0", "crawler"),
        ("", "empty_user_agent"),
    ],
)
def test_known_bots_are_refused_and_nothing_is_queued(
    pipeline: Pipeline, user_agent: str, reason: str
) -> None:
    answer = hit(HIT, User_Agent=user_agent) if user_agent else hit(HIT)
    assert answer.status == 400
    assert answer.text == "User-Agent: a known crawler or tool; not recorded (BOT_FILTER)\n"
    assert pipeline.queued() == 0


def test_the_bot_filter_can_be_switched_off(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, BOT_FILTER="false")
    assert hit(HIT, User_Agent="curl/8.5.0").status == 200


def test_page_origin_allowlist_filters_by_referer(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, ALLOWED_PAGE_ORIGINS="https://shop.example.com")
    ok = hit(HIT, User_Agent=CHROMIUM_USER_AGENT, Referer="https://shop.example.com/cart")
    assert ok.status == 200
    other = hit(HIT, User_Agent=CHROMIUM_USER_AGENT, Referer="https://evil.example.net/")
    assert other.status == 400
    assert other.text == "Referer: page origin not allowed (ALLOWED_PAGE_ORIGINS)\n"
    assert pipeline.queued() == 1


def signed(monkeypatch: pytest.MonkeyPatch, **more: str) -> None:
    configure(
        monkeypatch,
        TOKEN_HS256_KEYS=json.dumps({"k1": SECRET}),
        SIGNED_USER_ATTRIBUTES="plan",
        **more,
    )


def test_a_signed_hit_may_write_its_own_profile(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed(monkeypatch)
    query = f"{HIT}&user_id=u-1&usat_plan=gold&token={token('ep-1', 'u-1')}"
    assert pipeline.hit(query).status == 200
    [message] = pipeline.sqs.receive_message(QueueUrl=pipeline.events_url)["Messages"]
    body = json.loads(message["Body"])
    assert (body["user_id"], body["user_attributes"]) == ("u-1", {"plan": ["gold"]})
    assert "token" not in json.dumps(body)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (
            "event=purchase&endpoint_id=victim&usat_plan=gold&token={ep1}",
            "token: was issued for another endpoint_id",
        ),
        (
            "event=purchase&endpoint_id=ep-1&user_id=someone-else&token={ep1_u1}",
            "token: was not issued for this user_id",
        ),
        ("event=purchase&endpoint_id=ep-1&token={expired}", "token: has expired"),
        (
            "event=purchase&endpoint_id=ep-1&usat_plan=gold",
            "usat_plan: anonymous hits may not write this profile attribute "
            "(not in ALLOWED_USER_ATTRIBUTES)",
        ),
    ],
)
def test_a_token_never_authorizes_another_endpoint_or_user(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, query: str, reason: str
) -> None:
    signed(monkeypatch)
    tokens = {
        "ep1": token("ep-1"),
        "ep1_u1": token("ep-1", "u-1"),
        "expired": token("ep-1", lifetime=-3600),
    }
    answer = pipeline.hit(query.format(**tokens))
    assert (answer.status, answer.text) == (400, reason + "\n")
    assert pipeline.queued() == 0


def test_required_signatures_stop_event_injection_for_other_endpoints(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed(monkeypatch, REQUIRE_SIGNED_HITS="true")
    forged = pipeline.hit("event=purchase_success&endpoint_id=victim")
    assert (forged.status, forged.text) == (400, "token: is required (REQUIRE_SIGNED_HITS)\n")
    assert pipeline.hit(f"{HIT}&token={token('ep-1')}").status == 200
    assert pipeline.queued() == 1


def test_a_token_where_signing_is_not_configured_is_refused(pipeline: Pipeline) -> None:
    answer = pipeline.hit(f"{HIT}&token=abc")
    assert (answer.status, answer.text) == (400, "token: signed hits are not configured here\n")

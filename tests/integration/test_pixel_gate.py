"""What stands before a hit's parameters: bots, page origins and signed hits, end to end."""

from __future__ import annotations

import base64
import json

import pytest

from tests.integration.harness import (
    CHROMIUM_USER_AGENT,
    Pipeline,
    ProxyResponse,
    configure,
    proxy_event,
    signed,
)
from tests.tokens import live_token

HIT = "event=purchase&endpoint_id=ep-1"


def hit(query: str, **headers: str) -> ProxyResponse:
    from app import app

    answer = app(proxy_event(query, {k.replace("_", "-"): v for k, v in headers.items()}), None)
    body = base64.b64decode(answer["body"]) if answer.get("isBase64Encoded") else answer["body"]
    return ProxyResponse(answer["statusCode"], answer["headers"], body)


CRAWLER_REASON = "User-Agent: a known crawler or tool; not recorded (BOT_FILTER)\n"
MISSING_REASON = (
    "User-Agent: is missing or blank; every browser sends one, so the hit is taken for a "
    "script's (BOT_FILTER)\n"
)


@pytest.mark.parametrize(
    ("user_agent", "reason"),
    [
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", CRAWLER_REASON),
        ("curl/8.5.0", CRAWLER_REASON),
        ("", MISSING_REASON),
        ("   ", MISSING_REASON),
    ],
    ids=["googlebot", "curl", "missing", "blank"],
)
def test_known_bots_are_refused_with_an_accurate_reason_and_nothing_is_queued(
    pipeline: Pipeline, user_agent: str, reason: str
) -> None:
    answer = hit(HIT, User_Agent=user_agent) if user_agent else hit(HIT)
    assert answer.status == 400
    assert answer.text == reason
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


def test_a_refusal_names_the_header_that_decided(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, ALLOWED_PAGE_ORIGINS="https://shop.example.com")
    by_origin = hit(
        HIT,
        User_Agent=CHROMIUM_USER_AGENT,
        Origin="https://evil.example.net",
        Referer="https://shop.example.com/cart",
    )
    assert by_origin.text == "Origin: page origin not allowed (ALLOWED_PAGE_ORIGINS)\n"
    by_referer = hit(
        HIT, User_Agent=CHROMIUM_USER_AGENT, Origin="null", Referer="https://evil.example.net/"
    )
    assert by_referer.text == "Referer: page origin not allowed (ALLOWED_PAGE_ORIGINS)\n"
    assert hit(HIT, User_Agent=CHROMIUM_USER_AGENT).status == 200  # neither: passes by default
    configure(monkeypatch, PAGE_ORIGIN_REQUIRED="true")
    neither = hit(HIT, User_Agent=CHROMIUM_USER_AGENT)
    assert (neither.status, neither.text) == (
        400,
        "Origin/Referer: neither sent; the page must be named (PAGE_ORIGIN_REQUIRED)\n",
    )
    assert pipeline.queued() == 1


def test_a_signed_hit_may_write_its_own_profile(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed(monkeypatch)
    query = f"{HIT}&user_id=u-1&usat_plan=gold&token={live_token('ep-1', 'u-1')}"
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
        "ep1": live_token("ep-1"),
        "ep1_u1": live_token("ep-1", "u-1"),
        "expired": live_token("ep-1", lifetime=-3600),
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
    assert pipeline.hit(f"{HIT}&token={live_token('ep-1')}").status == 200
    assert pipeline.queued() == 1


def test_a_token_where_signing_is_not_configured_is_refused(pipeline: Pipeline) -> None:
    answer = pipeline.hit(f"{HIT}&token=abc")
    assert (answer.status, answer.text) == (400, "token: signed hits are not configured here\n")

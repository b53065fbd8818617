"""The GTM tag templates in gtm/*.tpl, executed: their ___TESTS___ scenarios run in Node on the
strict emulator (devtools/gtm/emulator.mjs through tests/gtm/harness.mjs: GTM's test API, only
the APIs GTM has, each call checked against the permissions the template declares), and what
the code sends is read back with the pixel's own rules, so "the pixel records exactly what the
tag was given" is checked end to end short of a browser (tests/gtm/test_browser_proof.py).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chalicelib.hits import AcceptedHit, HitPolicy, parse_hit
from devtools.paths import ROOT
from tests.gtm.node import run_once, run_scenarios

WEB = ROOT / "gtm" / "pixel-relay-tag.tpl"
SERVER = ROOT / "gtm" / "pixel-relay-server-tag.tpl"
PIXEL = "https://abc123.execute-api.eu-central-1.amazonaws.com/api/events"
SECTION = re.compile(r"^___([A-Z_]+)___$", re.MULTILINE)


def sections(path: Path) -> dict[str, str]:
    parts = SECTION.split(path.read_text())
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def as_the_pixel_reads(query: str, policy: HitPolicy | None = None) -> AcceptedHit:
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    return parse_hit(params, policy or HitPolicy(), datetime.now(UTC))


def web_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "pixelUrl": PIXEL,
        "eventName": "purchase",
        "endpointId": "ep-1",
        "eventId": "",
        "timestamp": "",
        "eventAttributes": [],
        "eventMetrics": [],
        "profileAttributes": [],
        "transport": "image",
        "requireAnalyticsStorage": True,
    }
    return data | changes


# The scenarios ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "topics"),
    [
        (
            WEB,
            (
                "encodes",
                "batched",
                "cannot be loaded",
                "consent denied",
                "missing",
                "unset variable",
                "object or an array",
                "half of an emoji",
            ),
        ),
        (SERVER, ("one encoded line", "refuses", "503", "missing")),
    ],
    ids=["web", "server"],
)
def test_every_scenario_of_the_templates_tests_section_passes(
    template: Path, topics: tuple[str, ...]
) -> None:
    status, results = run_scenarios(template)
    failed = {r["name"]: r["error"] for r in results if not r["passed"]}
    assert not failed, json.dumps(failed, indent=2)
    assert status == 0
    names = " | ".join(r["name"] for r in results)
    for topic in topics:
        assert topic in names, f"no scenario about {topic!r} in {template.name}"


def test_the_harness_fails_a_template_that_sends_values_unencoded(tmp_path: Path) -> None:
    broken = tmp_path / "unencoded.tpl"
    broken.write_text(
        WEB.read_text().replace(
            "hit.parts.push(key + '=' + encodedValue);",
            "hit.parts.push(key + '=' + text);",
        )
    )
    assert broken.read_text() != WEB.read_text()
    status, results = run_scenarios(broken)
    assert status == 1
    failed = [r["name"] for r in results if not r["passed"]]
    assert any(name.startswith("encodes every name and value") for name in failed)


def test_the_harness_refuses_a_global_gtms_sandbox_does_not_have(tmp_path: Path) -> None:
    broken = tmp_path / "global.tpl"
    broken.write_text(
        WEB.read_text().replace(
            "function textOf(value) {\n",
            "function textOf(value) {\n  if (value === 0) { return String(value); }\n",
        )
    )
    answer = run_once(broken, {"data": web_data(eventMetrics=[{"name": "n", "value": 0}])})
    assert answer["error"] == "ReferenceError: String is not defined"


# What the web tag sends, read by the pixel ----------------------------------------------------

AWKWARD = {
    "product": "shoes & socks #1",
    "query": "a=b+c d%20",
    "city": "Zürich 😀",
    "empty": "",
}


def test_an_image_hit_records_exactly_what_the_tag_was_given() -> None:
    data = web_data(
        eventName="purchase&success",
        endpointId="ep#10",
        eventId="id=1",
        timestamp="2026-11-28T10:00:00+01:00",
        eventAttributes=[{"name": k, "value": v} for k, v in AWKWARD.items()],
        eventMetrics=[{"name": "price", "value": 49.9}, {"name": "unset", "value": None}],
        profileAttributes=[{"kind": "usat_", "name": "interests", "value": ["run & jump", "jazz"]}],
    )
    answer = run_once(
        WEB,
        {"data": data, "mocks": {"sendPixel": "success"}, "consent": {"ad_storage": "denied"}},
    )
    [[url, *_callbacks]] = answer["calls"]["sendPixel"]
    assert url.startswith(PIXEL + "?")
    assert answer["outcome"] == "success"
    policy = HitPolicy(  # old enough a timestamp to pass on any later day
        allowed_user_attributes=frozenset({"interests"}),
        max_event_age=datetime.now(UTC) - datetime(2026, 1, 1, tzinfo=UTC),
    )
    hit = as_the_pixel_reads(urllib.parse.urlsplit(url).query, policy)
    event = hit.event
    assert event.event_type == "purchase&success"
    assert event.endpoint_id == "ep#10"
    assert event.event_id == "id=1"
    assert event.timestamp == "2026-11-28T09:00:00.000Z"
    assert event.client_timestamp is None  # sent_at is this machine's clock: nothing to correct
    assert event.attributes == AWKWARD
    assert event.metrics == {"price": 49.9}
    assert event.profile.user_attributes == {"interests": ("run & jump", "jazz")}
    assert event.consent == {
        "ad_storage": "denied",
        "analytics_storage": "granted",
        "ad_user_data": "granted",
        "ad_personalization": "granted",
    }
    assert hit.unknown_parameters == ()  # the cache buster is gtmcb, which the pixel ignores


def queued_hits(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """What the tag pushed onto pixel-relay.js's queue in the page's window."""
    hits: list[dict[str, Any]] = answer["window"].get("pixelRelayQueue", [])
    return hits


def test_a_batched_hit_is_one_line_the_pixel_reads_as_the_same_hit() -> None:
    data = web_data(
        transport="batched",
        endpointId="ep#7",
        eventAttributes=[{"name": "link", "value": "/p?x=1&y=2#top"}],
    )
    answer = run_once(WEB, {"data": data, "mocks": {"injectScript": "success"}})
    [[script, *_callbacks, token]] = answer["calls"]["injectScript"]
    assert script == PIXEL.removesuffix("events") + "pixel-relay.js"
    assert token == "pixel-relay"
    [queued] = queued_hits(answer)
    assert (queued["v"], queued["url"]) == (1, PIXEL)
    assert "sendPixel" not in answer["calls"]
    assert answer["outcome"] == "success"
    event = as_the_pixel_reads(queued["line"]).event
    assert (event.event_type, event.endpoint_id) == ("purchase", "ep#7")
    assert event.attributes == {"link": "/p?x=1&y=2#top"}
    assert event.event_id  # the tag made one: a batch sent twice is recorded once


def test_a_newline_in_a_value_never_splits_the_beacon_into_two_hits() -> None:
    data = web_data(
        transport="batched", eventId="e-1", eventAttributes=[{"name": "note", "value": "a\r\nb"}]
    )
    answer = run_once(WEB, {"data": data, "mocks": {"injectScript": "success"}})
    [queued] = queued_hits(answer)
    assert "\n" not in queued["line"]
    assert "&evat_note=a%0D%0Ab&" in queued["line"]


def test_a_script_that_cannot_load_sends_the_hit_as_an_image() -> None:
    data = web_data(transport="batched")
    answer = run_once(
        WEB, {"data": data, "mocks": {"injectScript": "failure", "sendPixel": "success"}}
    )
    assert queued_hits(answer) == []
    [[url, *_callbacks]] = answer["calls"]["sendPixel"]
    assert as_the_pixel_reads(urllib.parse.urlsplit(url).query).event.endpoint_id == "ep-1"
    assert answer["outcome"] == "success"


def test_without_consent_nothing_leaves_the_page() -> None:
    answer = run_once(
        WEB,
        {"data": web_data(transport="batched"), "consent": {"analytics_storage": "denied"}},
    )
    assert answer["calls"]["isConsentGranted"] == [["analytics_storage"]]
    assert "sendPixel" not in answer["calls"]
    assert "injectScript" not in answer["calls"]
    assert answer["outcome"] == "success"
    assert answer["logs"] == [
        "pixel-relay tag: analytics_storage consent is not granted: nothing sent"
    ]


# The server tag -----------------------------------------------------------------------------


SERVER_DATA: dict[str, Any] = {
    "pixelUrl": PIXEL,
    "endpointIdField": "client_id",
    "eventIdField": "",
    "attributeParameters": [{"key": "coupon", "name": ""}],
    "metricParameters": [],
    "consentParameters": [],
    "forwardBrowserHeaders": True,
}
ACCEPTED = {"sendHttpRequest": {"statusCode": 200, "body": '{"accepted": 1, "refused": []}'}}


def server_request(event_data: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """What the server tag sent for this event: {url, options, body}, and the run's answer."""
    answer = run_once(
        SERVER, {"data": SERVER_DATA | changes, "eventData": event_data, "mocks": ACCEPTED}
    )
    assert answer["error"] is None, answer["error"]
    [[url, _callback, options, body]] = answer["calls"]["sendHttpRequest"]
    return {"url": url, "options": options, "body": body, "answer": answer}


def test_a_ga4_event_becomes_one_line_the_pixel_accepts() -> None:
    event_data = {
        "event_name": "purchase",
        "client_id": "1234567890.1700000000",
        "value": 120,
        "currency": "EUR",
        "page_location": "https://shop.example/checkout?step=2&coupon=a#b",
        "user_agent": "Mozilla/5.0 Chrome/131.0",
        "coupon": "SPRING & SUMMER",
        "x-ga-gcs": "G110",
    }
    sent = server_request(event_data)
    assert sent["url"] == PIXEL
    assert sent["options"]["method"] == "POST"
    assert sent["options"]["headers"] == {
        "Content-Type": "text/plain;charset=UTF-8",
        "User-Agent": "Mozilla/5.0 Chrome/131.0",
        "Referer": "https://shop.example/checkout?step=2&coupon=a",  # the fragment stays home
    }
    assert "\n" not in sent["body"]
    event = as_the_pixel_reads(sent["body"]).event
    assert (event.event_type, event.endpoint_id) == ("purchase", "1234567890.1700000000")
    assert event.metrics == {"value": 120.0}
    assert event.attributes == {
        "currency": "EUR",
        "page_location": "https://shop.example/checkout?step=2&coupon=a",
        "coupon": "SPRING & SUMMER",
    }
    assert event.consent == {"ad_storage": "granted", "analytics_storage": "denied"}
    assert sent["answer"]["outcome"] == "success"


def test_the_referer_is_ascii_a_server_can_send_and_decodes_to_the_page() -> None:
    page = "https://shop.example/Ωmega/日本?q=ü%20x&emoji=😀#section"
    sent = server_request({"event_name": "view", "client_id": "c-1", "page_location": page})
    referer = sent["options"]["headers"]["Referer"]
    assert referer.isascii()
    assert referer == (
        "https://shop.example/%CE%A9mega/%E6%97%A5%E6%9C%AC?q=%C3%BC%20x&emoji=%F0%9F%98%80"
    )
    assert urllib.parse.unquote(referer) == urllib.parse.unquote(page.split("#")[0])


def test_without_forwarding_the_tags_own_user_agent_passes_the_default_bot_filter() -> None:
    from chalicelib.bots import BotFilter
    from chalicelib.pixel import Gate

    sent = server_request({"event_name": "view", "client_id": "c-1"}, forwardBrowserHeaders=False)
    headers = {name.lower(): value for name, value in sent["options"]["headers"].items()}
    assert headers["user-agent"] == "pixel-relay-server-tag/1 (GTM server container)"
    Gate(policy=HitPolicy(), bots=BotFilter(enabled=True)).check_request(headers)  # no refusal
    forwarded_without_agent = server_request({"event_name": "view", "client_id": "c-1"})
    assert forwarded_without_agent["options"]["headers"]["User-Agent"] == (
        "pixel-relay-server-tag/1 (GTM server container)"
    )


def test_every_value_is_cut_or_cleaned_in_the_tag_so_the_pixel_accepts_the_event() -> None:
    long_text = "a😀" * 200  # 600 UTF-16 units; unit 200 is the first half of an emoji
    event_data = {
        "event_name": "view",
        "client_id": "c-1",
        "page_location": "https://shop.example/" + "x" * 400,
        "coupon": long_text,
        "note": "line one\nline two\ttabbed",
    }
    attributes = [{"key": "coupon", "name": ""}, {"key": "note", "name": ""}]
    sent = server_request(event_data, attributeParameters=attributes)
    event = as_the_pixel_reads(sent["body"]).event
    assert len(event.attributes["page_location"]) == 200
    assert event.attributes["coupon"] == "a😀" * 66 + "a"  # 199 units: the emoji left whole
    assert event.attributes["note"] == "line one line two tabbed"


# Shape --------------------------------------------------------------------------------------


@pytest.mark.parametrize("template", [WEB, SERVER], ids=["web", "server"])
def test_the_template_has_the_gallery_sections_and_reads_only_its_own_fields(
    template: Path,
) -> None:
    found = sections(template)
    code_section = "SANDBOXED_JS_FOR_WEB_TEMPLATE" if template == WEB else "SANDBOXED_JS_FOR_SERVER"
    permissions_section = "WEB_PERMISSIONS" if template == WEB else "SERVER_PERMISSIONS"
    assert {"INFO", "TEMPLATE_PARAMETERS", code_section, permissions_section, "TESTS"} <= set(found)
    info = json.loads(found["INFO"])
    assert info["type"] == "TAG"
    assert info["containerContexts"] == (["WEB"] if template == WEB else ["SERVER"])
    fields = {p["name"] for p in json.loads(found["TEMPLATE_PARAMETERS"])}
    used = set(re.findall(r"\bdata\.(\w+)", found[code_section]))
    assert used - {"gtmOnSuccess", "gtmOnFailure"} <= fields, "the code reads a field nobody sets"


def declared(template: Path) -> dict[str, dict[str, Any]]:
    """publicId -> {param key: plain value} of the template's permissions."""

    def plain(value: dict[str, Any]) -> Any:
        if value["type"] == 2:
            return [plain(item) for item in value.get("listItem", [])]
        if value["type"] == 3:
            return {
                plain(k): plain(v) for k, v in zip(value["mapKey"], value["mapValue"], strict=True)
            }
        return value.get("string", value.get("boolean"))

    section = "WEB_PERMISSIONS" if template == WEB else "SERVER_PERMISSIONS"
    return {
        entry["instance"]["key"]["publicId"]: {
            param["key"]: plain(param["value"]) for param in entry["instance"]["param"]
        }
        for entry in json.loads(sections(template)[section])
    }


def test_the_web_tag_touches_only_its_own_queue_and_reads_only_consent() -> None:
    permissions = declared(WEB)
    assert set(permissions) == {
        "logging",
        "send_pixel",
        "inject_script",
        "access_globals",
        "access_consent",
    }
    assert permissions["access_globals"]["keys"] == [
        {"key": "pixelRelayQueue", "read": True, "write": True, "execute": False}
    ]
    assert permissions["send_pixel"]["urls"] == ["https://*.amazonaws.com/"]
    assert permissions["inject_script"]["urls"] == ["https://*.amazonaws.com/"]
    assert permissions["access_consent"]["consentTypes"] == [
        {"consentType": kind, "read": True, "write": False}
        for kind in ("ad_storage", "analytics_storage", "ad_user_data", "ad_personalization")
    ]
    assert permissions["logging"] == {"environments": "debug"}

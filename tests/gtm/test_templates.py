"""The GTM tag templates in gtm/*.tpl, executed: their ___TESTS___ scenarios run in Node with
tests/gtm/harness.mjs (GTM's test API and the sandboxed APIs the templates require, checked
against the permissions they declare), and what the code sends is read back with the pixel's
own rules, so "the pixel records exactly what the tag was given" is checked end to end
short of a browser.
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
PIXEL = "https://abc123.execute-api.eu-west-1.amazonaws.com/api/events"
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
        "pageMayUnload": False,
        "requireAnalyticsStorage": True,
    }
    return data | changes


# The scenarios ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "topics"),
    [
        (WEB, ("encodes", "sendBeacon", "falls back", "consent denied", "missing")),
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
            "return encodeUriComponent(name) + '=' + encodeUriComponent(value);",
            "return encodeUriComponent(name) + '=' + value;",
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
    answer = run_once(WEB, {"data": data, "mocks": {"sendPixel": "success"}})
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
    assert event.attributes == AWKWARD
    assert event.metrics == {"price": 49.9}
    assert event.profile.user_attributes == {"interests": ("run & jump", "jazz")}
    assert hit.unknown_parameters == ()  # the cache buster is gtmcb, which the pixel ignores


def test_a_beacon_posts_one_line_that_the_pixel_reads_as_the_same_hit() -> None:
    data = web_data(
        pageMayUnload=True,
        endpointId="ep#7",
        eventAttributes=[{"name": "link", "value": "/p?x=1&y=2#top"}],
    )
    answer = run_once(WEB, {"data": data, "mocks": {"callInWindow": True}})
    [[path, url, body]] = answer["calls"]["callInWindow"]
    assert (path, url) == ("navigator.sendBeacon", PIXEL)
    assert "sendPixel" not in answer["calls"]
    assert answer["outcome"] == "success"
    event = as_the_pixel_reads(body).event
    assert (event.event_type, event.endpoint_id) == ("purchase", "ep#7")
    assert event.attributes == {"link": "/p?x=1&y=2#top"}


def test_a_newline_in_a_value_never_splits_the_beacon_into_two_hits() -> None:
    data = web_data(pageMayUnload=True, eventAttributes=[{"name": "note", "value": "a\r\nb"}])
    answer = run_once(WEB, {"data": data, "mocks": {"callInWindow": True}})
    [[_path, _url, body]] = answer["calls"]["callInWindow"]
    assert body == "event=purchase&endpoint_id=ep-1&evat_note=a%0D%0Ab"


def test_without_consent_nothing_leaves_the_page() -> None:
    answer = run_once(
        WEB, {"data": web_data(pageMayUnload=True), "mocks": {"isConsentGranted": False}}
    )
    assert answer["calls"]["isConsentGranted"] == [["analytics_storage"]]
    assert "sendPixel" not in answer["calls"]
    assert "callInWindow" not in answer["calls"]
    assert answer["outcome"] == "success"
    assert answer["logs"] == [
        "pixel-relay tag: analytics_storage consent is not granted: nothing sent"
    ]


# The server tag -----------------------------------------------------------------------------


def test_a_ga4_event_becomes_one_line_the_pixel_accepts() -> None:
    event_data = {
        "event_name": "purchase",
        "client_id": "1234567890.1700000000",
        "value": 120,
        "currency": "EUR",
        "page_location": "https://shop.example/checkout?step=2&coupon=a#b",
        "user_agent": "Mozilla/5.0 Chrome/131.0",
        "coupon": "SPRING & SUMMER",
    }
    data = {
        "pixelUrl": PIXEL,
        "endpointIdField": "client_id",
        "eventIdField": "",
        "attributeParameters": [{"key": "coupon", "name": ""}],
        "metricParameters": [],
        "forwardBrowserHeaders": True,
    }
    answer = run_once(
        SERVER,
        {
            "data": data,
            "eventData": event_data,
            "mocks": {
                "sendHttpRequest": {"statusCode": 200, "body": '{"accepted": 1, "refused": []}'}
            },
        },
    )
    [[url, _callback, options, body]] = answer["calls"]["sendHttpRequest"]
    assert url == PIXEL
    assert options["method"] == "POST"
    assert options["headers"] == {
        "Content-Type": "text/plain;charset=UTF-8",
        "User-Agent": "Mozilla/5.0 Chrome/131.0",
        "Referer": "https://shop.example/checkout?step=2&coupon=a#b",
    }
    assert "\n" not in body
    event = as_the_pixel_reads(body).event
    assert (event.event_type, event.endpoint_id) == ("purchase", "1234567890.1700000000")
    assert event.metrics == {"value": 120.0}
    assert event.attributes == {
        "currency": "EUR",
        "page_location": "https://shop.example/checkout?step=2&coupon=a#b",
        "coupon": "SPRING & SUMMER",
    }
    assert answer["outcome"] == "success"


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


def test_the_web_tag_may_call_only_navigator_send_beacon_on_the_page() -> None:
    permissions = {
        p["instance"]["key"]["publicId"]: p["instance"]["param"]
        for p in json.loads(sections(WEB)["WEB_PERMISSIONS"])
    }
    assert set(permissions) == {"logging", "send_pixel", "access_globals", "access_consent"}
    [keys] = permissions["access_globals"]
    [entry] = keys["value"]["listItem"]
    granted = {
        k["string"]: v.get("string", v.get("boolean"))
        for k, v in zip(entry["mapKey"], entry["mapValue"], strict=True)
    }
    assert granted == {
        "key": "navigator.sendBeacon",
        "read": False,
        "write": False,
        "execute": True,
    }
    [consent] = permissions["access_consent"]
    [consent_entry] = consent["value"]["listItem"]
    assert [v.get("string", v.get("boolean")) for v in consent_entry["mapValue"]] == [
        "analytics_storage",
        True,
        False,
    ]

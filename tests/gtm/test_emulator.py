"""The strict emulator of GTM's template runtime (devtools/gtm/emulator.mjs): it refuses what
Google documents GTM refuses (docs/gtm-emulator.md), so a template that passes here is not
stopped by GTM for an API or a permission. Each rule is shown refusing at least once; the tag
template of main fbb660a is shown failing to load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.gtm.node import run_once, run_scenarios

FIXTURES = Path(__file__).parent / "fixtures"
BEFORE = FIXTURES / "pixel-relay-tag-fbb660a.tpl"


def string(value: str) -> dict[str, Any]:
    return {"type": 1, "string": value}


def boolean(value: bool) -> dict[str, Any]:
    return {"type": 8, "boolean": value}


def listed(*items: dict[str, Any]) -> dict[str, Any]:
    return {"type": 2, "listItem": list(items)}


def mapped(**entries: str | bool) -> dict[str, Any]:
    return {
        "type": 3,
        "mapKey": [string(key) for key in entries],
        "mapValue": [
            boolean(value) if isinstance(value, bool) else string(value)
            for value in entries.values()
        ],
    }


def permission(public_id: str, **params: dict[str, Any]) -> dict[str, Any]:
    return {
        "instance": {
            "key": {"publicId": public_id, "versionId": "1"},
            "param": [{"key": key, "value": value} for key, value in params.items()],
        },
        "isRequired": True,
    }


LOGGING = permission("logging", environments=string("debug"))


def template(
    tmp_path: Path, code: str, permissions: list[dict[str, Any]], kind: str = "WEB"
) -> Path:
    """A template file with this code and these declared permissions."""
    code_section = "SANDBOXED_JS_FOR_WEB_TEMPLATE" if kind == "WEB" else "SANDBOXED_JS_FOR_SERVER"
    permissions_section = "WEB_PERMISSIONS" if kind == "WEB" else "SERVER_PERMISSIONS"
    info = {"type": "TAG", "id": "cvt_temp_public_id", "containerContexts": [kind]}
    path = tmp_path / "made.tpl"
    path.write_text(
        f"___INFO___\n\n{json.dumps(info)}\n\n___TEMPLATE_PARAMETERS___\n\n[]\n\n"
        f"___{code_section}___\n\n{code}\n\n___{permissions_section}___\n\n"
        f"{json.dumps(permissions)}\n\n___TESTS___\n\nscenarios: []\n"
    )
    return path


def run(
    tmp_path: Path, code: str, permissions: list[dict[str, Any]], kind: str = "WEB", **request: Any
) -> dict[str, Any]:
    return run_once(template(tmp_path, code, permissions, kind), {"data": {}, **request})


# The template of main fbb660a -------------------------------------------------------------------


def test_the_tag_of_main_before_this_change_does_not_load(tmp_path: Path) -> None:
    """It granted itself `navigator.sendBeacon`: GTM does not allow that key, so its beacon
    mode could never run in GTM. Its own scenarios cannot even start."""
    status, results = run_scenarios(BEFORE)
    assert status == 1
    assert results == []
    answer = run_once(BEFORE, {"data": {"pixelUrl": "https://a.amazonaws.com/api/events"}})
    assert answer["outcome"] is None
    assert answer["calls"] == {}
    assert answer["error"].startswith(
        "TemplateError: the template declares permissions GTM does not allow: access_globals "
        "key navigator.sendBeacon: its first token navigator is a predefined key on browser "
        "global scope"
    )


def test_the_fixture_is_the_template_as_main_had_it() -> None:
    text = BEFORE.read_text()
    assert '"string": "navigator.sendBeacon"' in text
    assert "callInWindow('navigator.sendBeacon', url, query)" in text


# APIs that exist ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "api"),
    [("WEB", "sendHttpRequest"), ("WEB", "getAllEventData"), ("SERVER", "sendPixel")],
)
def test_an_api_that_does_not_exist_for_the_container_kind_fails(
    tmp_path: Path, kind: str, api: str
) -> None:
    answer = run(tmp_path, f"const api = require('{api}');\ndata.gtmOnSuccess();", [], kind)
    container = "web" if kind == "WEB" else "server"
    assert answer["error"] == (
        f"TemplateError: require('{api}'): no such API in {container} templates"
    )
    assert answer["outcome"] is None


def test_a_global_the_sandbox_lacks_is_not_there(tmp_path: Path) -> None:
    answer = run(tmp_path, "const now = Date.now();\ndata.gtmOnSuccess();", [])
    assert answer["error"] == "ReferenceError: Date is not defined"


# access_globals ---------------------------------------------------------------------------------


def globals_permission(key: str, read: bool, write: bool, execute: bool) -> dict[str, Any]:
    entry = mapped(key=key, read=read, write=write, execute=execute)
    return permission("access_globals", keys=listed(entry))


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("navigator.sendBeacon", "its first token navigator is a predefined key on browser"),
        ("fetch", "its first token fetch is a predefined key on browser"),
        ("document.title", "its first token document is a predefined key on browser"),
        ("toString", "its first token toString is a predefined key on browser"),
        ("class.queue", "its first token class is a JavaScript keyword"),
        ("a..b", 'access_globals key "a..b" is not a dot-separated path'),
    ],
)
def test_a_key_whose_first_token_is_a_browser_global_or_a_keyword_is_refused(
    tmp_path: Path, key: str, problem: str
) -> None:
    answer = run(tmp_path, "data.gtmOnSuccess();", [globals_permission(key, True, True, True)])
    assert problem in answer["error"]
    assert answer["outcome"] is None


def test_create_queue_needs_read_and_write(tmp_path: Path) -> None:
    code = "const createQueue = require('createQueue');\ncreateQueue('myQueue')(1);"
    denied = run(tmp_path, code, [globals_permission("myQueue", True, False, False)])
    assert (
        denied["error"]
        == 'PermissionError: permission denied: access_globals "readwrite" "myQueue"'
    )
    allowed = run(tmp_path, code, [globals_permission("myQueue", True, True, False)])
    assert allowed["error"] is None
    assert allowed["window"] == {"myQueue": [1]}


def test_call_in_window_needs_execute_on_that_exact_key(tmp_path: Path) -> None:
    code = "const callInWindow = require('callInWindow');\ncallInWindow('tools.ping', 1);"
    denied = run(tmp_path, code, [globals_permission("tools.ping", True, True, False)])
    assert (
        denied["error"]
        == 'PermissionError: permission denied: access_globals "execute" "tools.ping"'
    )
    other = run(tmp_path, code, [globals_permission("tools", True, True, True)])
    assert (
        other["error"]
        == 'PermissionError: permission denied: access_globals "execute" "tools.ping"'
    )


def test_a_mock_never_stands_in_for_a_permission(tmp_path: Path) -> None:
    code = "const sendPixel = require('sendPixel');\nsendPixel('https://x.example.com/p');"
    answer = run(tmp_path, code, [], mocks={"sendPixel": "success"})
    assert (
        answer["error"]
        == 'PermissionError: permission denied: send_pixel "https://x.example.com/p"'
    )


# URL match patterns (send_pixel, inject_script) ---------------------------------------------


def url_permission(public_id: str, *patterns: str) -> dict[str, Any]:
    urls = listed(*(string(pattern) for pattern in patterns))
    if public_id == "inject_script":
        return permission(public_id, urls=urls)
    return permission(public_id, allowedUrls=string("specific"), urls=urls)


@pytest.mark.parametrize("public_id", ["send_pixel", "inject_script"])
@pytest.mark.parametrize(
    ("pattern", "url", "allowed"),
    [
        ("https://*.amazonaws.com/", "https://abc.execute-api.eu-west-1.amazonaws.com/api/x", True),
        ("https://*.amazonaws.com/", "https://amazonaws.com/x", False),
        ("https://*.amazonaws.com/", "https://evil-amazonaws.com/x", False),
        ("https://*.amazonaws.com/", "http://abc.amazonaws.com/x", False),
        ("https://a.example.com/api/", "https://a.example.com/api/events", True),
        ("https://a.example.com/api/", "https://a.example.com/other/events", False),
        ("https://a.example.com/api/", "https://a.example.com:8443/api/events", False),
        ("https://a.example.com/api/", "https://user@a.example.com/api/events", False),
    ],
)
def test_urls_are_checked_against_the_declared_match_patterns(
    tmp_path: Path, public_id: str, pattern: str, url: str, allowed: bool
) -> None:
    api = "sendPixel" if public_id == "send_pixel" else "injectScript"
    code = f"const api = require('{api}');\napi({json.dumps(url)});\ndata.gtmOnSuccess();"
    answer = run(tmp_path, code, [url_permission(public_id, pattern)])
    if allowed:
        assert answer["error"] is None
        assert answer["calls"][api] == [[url]]
    else:
        assert (
            answer["error"] == f"PermissionError: permission denied: {public_id} {json.dumps(url)}"
        )


def test_a_pattern_that_is_not_a_url_match_pattern_stops_the_template(tmp_path: Path) -> None:
    answer = run(
        tmp_path, "data.gtmOnSuccess();", [url_permission("inject_script", "*.example.com")]
    )
    assert answer["error"].endswith('inject_script: "*.example.com" is not a URL match pattern')


# Consent and logging ---------------------------------------------------------------------------


def consent_permission(*types: str) -> dict[str, Any]:
    entries = (mapped(consentType=kind, read=True, write=False) for kind in types)
    return permission("access_consent", consentTypes=listed(*entries))


def test_only_the_declared_consent_types_may_be_read(tmp_path: Path) -> None:
    code = (
        "const isConsentGranted = require('isConsentGranted');\n"
        "isConsentGranted('analytics_storage');\nisConsentGranted('ad_storage');"
    )
    answer = run(tmp_path, code, [consent_permission("analytics_storage")])
    assert answer["calls"]["isConsentGranted"] == [["analytics_storage"], ["ad_storage"]]
    assert answer["error"] == (
        'PermissionError: permission denied: access_consent "ad_storage" "read"'
    )


def test_a_consent_type_google_does_not_know_stops_the_template(tmp_path: Path) -> None:
    answer = run(tmp_path, "data.gtmOnSuccess();", [consent_permission("cookies")])
    assert answer["error"].endswith("access_consent: cookies is not a consent type")


def test_unset_consent_reads_as_granted_and_denied_as_denied(tmp_path: Path) -> None:
    code = (
        "const isConsentGranted = require('isConsentGranted');\n"
        "const logToConsole = require('logToConsole');\n"
        "logToConsole(isConsentGranted('ad_storage'), isConsentGranted('analytics_storage'));"
    )
    permissions = [LOGGING, consent_permission("ad_storage", "analytics_storage")]
    answer = run(tmp_path, code, permissions, consent={"analytics_storage": "denied"})
    assert answer["logs"] == ["true false"]


@pytest.mark.parametrize(
    ("environments", "debug", "logged"),
    [("debug", True, True), ("debug", False, False), ("all", False, True)],
)
def test_logging_follows_its_environments(
    tmp_path: Path, environments: str, debug: bool, logged: bool
) -> None:
    code = "const logToConsole = require('logToConsole');\nlogToConsole('hello');"
    allowed = permission("logging", environments=string(environments))
    answer = run(tmp_path, code, [allowed], debug=debug)
    assert answer["logs"] == (["hello"] if logged else [])
    assert run(tmp_path, code, [])["error"] == "PermissionError: permission denied: logging "


def test_encode_uri_component_answers_undefined_for_a_lone_surrogate(tmp_path: Path) -> None:
    code = (
        "const encodeUriComponent = require('encodeUriComponent');\n"
        "const logToConsole = require('logToConsole');\n"
        "logToConsole(encodeUriComponent('a\\uD83D') === undefined, encodeUriComponent('é'));"
    )
    assert run(tmp_path, code, [LOGGING])["logs"] == ["true %C3%A9"]

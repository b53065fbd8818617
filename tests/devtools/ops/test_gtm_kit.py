"""The GTM container import file: GTM's export format, and an Image URL that, filled in the
way GTM fills it (variables inserted raw, Custom JavaScript run), is a hit the pixel accepts;
the template tag, its fields filled in the same way, run through the template it carries
(tests/gtm/harness.mjs), sends the same hit.

The Custom JavaScript variables run in Node.js (Debian's nodejs, on the machine image), with
GTM's variable references resolved as GTM does: Data Layer Variables from the data-layer
model, constants as written, `{{Event}}` the pushed event name; a field that is exactly one
reference gets the variable's value itself (an object stays an object), as in GTM.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.parse
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chalicelib.hits import HitPolicy, parse_hit
from devtools.ops.gtm import (
    API_URL_PLACEHOLDER,
    CONTAINER_FILE,
    DEFAULT_EVENTS,
    TEMPLATE_FILE,
    EventNamesError,
    checked_in_container,
    container,
    event_names,
    event_regex,
    render,
)
from devtools.paths import ROOT
from tests.gtm.node import node, run_once

REFERENCE = re.compile(r"\{\{([^}]+)\}\}")
BUILT_IN = {"_event"}  # GTM's internal event-name reference, always there

# Resolves a container's variables as GTM does and prints the Image URL it would request.
GTM_IN_NODE = r"""
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const version = input.container.containerVersion;
const variables = Object.fromEntries(version.variable.map(v => [v.name, v]));
const builtIn = {Event: input.dataLayer.event, _event: input.dataLayer.event};
const param = (v, key) => v.parameter.find(p => p.key === key).value;
function resolve(name) {
  if (name in builtIn) return builtIn[name];
  const v = variables[name];
  if (!v) throw new Error('no variable ' + name);
  if (v.type === 'c') return param(v, 'value');
  if (v.type === 'v') {
    let value = input.dataLayer;
    for (const key of param(v, 'name').split('.')) value = value == null ? undefined : value[key];
    return value;
  }
  if (v.type === 'jsm') {
    const refs = [];
    const code = param(v, 'javascript').replace(/\{\{([^}]+)\}\}/g, (_, n) => {
      refs.push(resolve(n));
      return '__refs[' + (refs.length - 1) + ']';
    });
    const run = new Function('__refs', 'window', 'return (' + code + ')();');
    return run(refs, {crypto: globalThis.crypto});
  }
  throw new Error('variable type ' + v.type);
}
const fill = (text) => {
  const only = /^\{\{([^}]+)\}\}$/.exec(text);
  if (only) return resolve(only[1]);
  return text.replace(/\{\{([^}]+)\}\}/g, (_, n) => String(resolve(n)));
};
function value(p) {
  if (p.type === 'BOOLEAN') return p.value === 'true';
  if (p.type === 'LIST') return p.list.map(value);
  if (p.type === 'MAP') return Object.fromEntries(p.map.map(m => [m.key, value(m)]));
  return fill(p.value);
}
if (input.tag === 'img') {
  const tag = version.tag.find(t => t.type === 'img');
  let url = fill(param(tag, 'url'));
  if (param(tag, 'useCacheBuster') === 'true') {
    url += (url.includes('?') ? '&' : '?') + param(tag, 'cacheBusterQueryParam') + '=' + 1234567890;
  }
  process.stdout.write(url);
} else {
  const tag = version.tag.find(t => t.type.startsWith('cvt_'));
  const fields = Object.fromEntries(tag.parameter.map(p => [p.key, value(p)]));
  process.stdout.write(JSON.stringify(fields));
}
"""


def _gtm_resolves(document: dict[str, Any], data_layer: dict[str, Any], tag: str) -> str:
    result = subprocess.run(
        [node(), "-e", GTM_IN_NODE],
        input=json.dumps({"container": document, "dataLayer": data_layer, "tag": tag}),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout


def gtm_fills_in(document: dict[str, Any], data_layer: dict[str, Any]) -> str:
    """The Image tag's URL as GTM requests it."""
    return _gtm_resolves(document, data_layer, "img")


def template_tag_sends(document: dict[str, Any], data_layer: dict[str, Any], tmp_path: Path) -> str:
    """The hit the template tag sends, as a GET's URL: its fields filled in by GTM, then the
    template the container carries run with them on the strict emulator, pixel-relay.js
    loading (the hit is what the tag hands the script's queue)."""
    fields = json.loads(_gtm_resolves(document, data_layer, "template"))
    [template] = document["containerVersion"]["customTemplate"]
    carried = tmp_path / "carried.tpl"
    carried.write_text(template["templateData"])
    answer = run_once(carried, {"data": fields, "mocks": {"injectScript": "success"}})
    assert answer["error"] is None, answer
    [queued] = answer["window"]["pixelRelayQueue"]
    return f"{queued['url']}?{queued['line']}"


def as_the_pixel_reads_it(url: str) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query, keep_blank_values=True)


def _section(template: str, name: str) -> str:
    return template.split(f"___TEMPLATE_{name}___")[1].split("\n___")[0]


def test_checked_in_container_is_current_run_ops_gtm_if_not() -> None:
    assert checked_in_container() == render(container()), (
        f"{CONTAINER_FILE} is stale: run .venv/bin/python -m devtools.ops.gtm"
    )


def test_container_has_gtms_export_shape() -> None:
    document = json.loads((ROOT / CONTAINER_FILE).read_text())
    assert document["exportFormatVersion"] == 2
    version = document["containerVersion"]
    assert version["container"]["usageContext"] == ["WEB"]
    image, template_tag = version["tag"]
    [trigger] = version["trigger"]
    [template] = version["customTemplate"]
    assert image["type"] == "img"
    assert image["paused"] is True  # two active tags would record every event twice
    assert "paused" not in template_tag
    assert template_tag["type"] == f"cvt_{template['containerId']}_{template['templateId']}"
    assert template["templateData"] == (ROOT / TEMPLATE_FILE).read_text()
    for tag in (image, template_tag):
        assert tag["consentSettings"] == {
            "consentStatus": "NEEDED",
            "consentType": {
                "type": "LIST",
                "list": [{"type": "TEMPLATE", "value": "analytics_storage"}],
            },
        }
        assert tag["firingTriggerId"] == [trigger["triggerId"]]
    parameters = {p["key"]: p for p in image["parameter"]}
    assert set(parameters) == {"url", "useCacheBuster", "cacheBusterQueryParam"}
    assert parameters["url"]["type"] == "TEMPLATE"
    assert parameters["useCacheBuster"] == {
        "type": "BOOLEAN",
        "key": "useCacheBuster",
        "value": "true",
    }
    assert parameters["cacheBusterQueryParam"]["value"] in HitPolicy().ignored_parameters
    fields = {p["name"] for p in json.loads(_section(template["templateData"], "PARAMETERS"))}
    assert {p["key"] for p in template_tag["parameter"]} <= fields
    assert trigger["type"] == "CUSTOM_EVENT"
    [event_filter] = trigger["customEventFilter"]
    assert event_filter["parameter"] == [
        {"type": "TEMPLATE", "key": "arg0", "value": "{{_event}}"},
        {"type": "TEMPLATE", "key": "arg1", "value": event_regex(DEFAULT_EVENTS)},
    ]
    assert event_filter["type"] == "MATCH_REGEX"

    kinds = {v["name"]: v["type"] for v in version["variable"]}
    assert {kinds[f"DLV {key}"] for key in ("endpointId", "attributes", "metrics")} == {"v"}
    for variable in version["variable"]:
        if variable["type"] == "v":
            keys = {p["key"]: p["value"] for p in variable["parameter"]}
            assert keys["dataLayerVersion"] == "2"
            assert variable["name"] == f"DLV {keys['name']}"
        assert variable["type"] in {"v", "jsm", "c"}
    ids = [v["variableId"] for v in version["variable"]]
    assert len(ids) == len(set(ids))

    # Every {{reference}} names a variable the import brings, or a built-in it enables.
    known = set(kinds) | {b["name"] for b in version["builtInVariable"]} | BUILT_IN
    text = json.dumps(version)
    assert set(REFERENCE.findall(text)) <= known


def test_every_value_is_url_encoded_so_the_pixel_reads_exactly_what_was_pushed() -> None:
    data_layer = {
        "event": "add to cart",
        "endpointId": "ep-42",
        "attributes": {"product": "shoes & socks #1", "path": "/p?x=1+2", "note": "100% ä"},
        "metrics": {"price": 49.9, "quantity": 2},
    }
    url = gtm_fills_in(container("https://abc.execute-api.eu-west-1.amazonaws.com/api"), data_layer)
    assert url.startswith("https://abc.execute-api.eu-west-1.amazonaws.com/api/events?")
    params = as_the_pixel_reads_it(url)
    hit = parse_hit(params, HitPolicy(), datetime.now(UTC))
    event = hit.event
    assert event.event_type == "add to cart"
    assert event.endpoint_id == "ep-42"
    assert event.attributes == data_layer["attributes"]
    assert event.metrics == {"price": 49.9, "quantity": 2.0}
    assert uuid.UUID(event.event_id).version == 4
    assert hit.unknown_parameters == ()  # gtmcb is ignored, nothing else unexpected


def test_unset_values_are_left_out_never_sent_as_undefined() -> None:
    data_layer = {
        "event": "signup",
        "endpointId": "ep-1",
        "attributes": {"plan": None, "source": "ad"},
        "userAttributes": {"language": "en"},  # not allowed in the stage-less kit
    }
    url = gtm_fills_in(container(), data_layer)
    assert "undefined" not in url
    assert "null" not in url
    params = as_the_pixel_reads_it(url)
    assert "evat_plan" not in params
    assert not any(name.startswith("usat_") for name in params)
    parse_hit(params, HitPolicy(), datetime.now(UTC))


def test_a_stage_container_sends_exactly_the_profile_attributes_the_stage_allows() -> None:
    policy = HitPolicy(
        allowed_user_attributes=frozenset({"language", "interests"}),
        allowed_endpoint_metrics=frozenset({"visits"}),
    )
    data_layer = {
        "event": "purchase",
        "endpointId": "ep-7",
        "userAttributes": {"language": "fr", "interests": ["running", "jazz"], "plan": "gold"},
        "endpointMetrics": {"visits": 3},
    }
    url = gtm_fills_in(container(API_URL_PLACEHOLDER, policy), data_layer)
    params = as_the_pixel_reads_it(url)
    assert params["usat_interests"] == ["running", "jazz"]  # repeated, one value each
    assert "usat_plan" not in params  # not allowed: left out instead of refusing the hit
    event = parse_hit(params, policy, datetime.now(UTC)).event
    assert event.profile.user_attributes == {"language": ("fr",), "interests": ("running", "jazz")}
    assert event.profile.endpoint_metrics == {"visits": 3.0}


def test_a_missing_endpoint_id_is_refused_by_the_pixel_with_its_reason() -> None:
    from chalicelib.hits import HitRefusedError

    url = gtm_fills_in(container(), {"event": "purchase"})
    with pytest.raises(HitRefusedError, match="endpoint_id"):
        parse_hit(as_the_pixel_reads_it(url), HitPolicy(), datetime.now(UTC))


# The template tag and the trigger ----------------------------------------------------------

STAGE_API = "https://abc123.execute-api.eu-west-1.amazonaws.com/api/"


def test_the_template_tag_sends_the_hit_the_image_tag_would(tmp_path: Path) -> None:
    data_layer = {
        "event": "purchase",
        "endpointId": "ep#42",
        "attributes": {"product": "shoes & socks #1", "path": "/p?x=1+2", "note": "100% ä 😀"},
        "metrics": {"price": 49.9, "quantity": 2},
    }
    document = container(STAGE_API)
    image = as_the_pixel_reads_it(gtm_fills_in(document, data_layer))
    sent = template_tag_sends(document, data_layer, tmp_path)
    assert sent.startswith(STAGE_API + "events?")
    template = as_the_pixel_reads_it(sent)
    for params in (image, template):
        event = parse_hit(params, HitPolicy(), datetime.now(UTC)).event
        assert event.event_type == "purchase"
        assert event.endpoint_id == "ep#42"
        assert event.attributes == data_layer["attributes"]
        assert event.metrics == {"price": 49.9, "quantity": 2.0}
        assert uuid.UUID(event.event_id).version == 4  # the kit's Event ID variable
    # The template adds what the Image tag cannot: the fire time and the consent state (and
    # the script adds sent_at); the Image tag adds GTM's cache buster.
    assert set(image) - {"gtmcb"} == set(template) - {"timestamp", "consent"}


def test_a_stage_template_tag_sends_the_allowed_profile_attributes_only(tmp_path: Path) -> None:
    policy = HitPolicy(
        allowed_user_attributes=frozenset({"language", "favourite colour"}),
        allowed_endpoint_metrics=frozenset({"visits"}),
    )
    data_layer = {
        "event": "signup",
        "endpointId": "ep-7",
        "userAttributes": {"favourite colour": "deep & dark blue", "plan": "gold"},
        "endpointMetrics": {"visits": 3},
    }
    document = container(STAGE_API, policy, ["signup"])
    params = as_the_pixel_reads_it(template_tag_sends(document, data_layer, tmp_path))
    assert "usat_plan" not in params  # not allowed: left out instead of refusing the hit
    assert "usat_language" not in params  # allowed but unset: left out, never "undefined"
    event = parse_hit(params, policy, datetime.now(UTC)).event
    assert event.profile.user_attributes == {"favourite colour": ("deep & dark blue",)}
    assert event.profile.endpoint_metrics == {"visits": 3.0}


def test_a_stage_container_lets_its_template_send_to_that_stage_only(tmp_path: Path) -> None:
    document = container(STAGE_API, HitPolicy(), ["purchase"])
    [template] = document["containerVersion"]["customTemplate"]
    assert f'"string": "{STAGE_API}events"' in template["templateData"]
    assert f'"string": "{STAGE_API}pixel-relay.js"' in template["templateData"]
    assert "*.amazonaws.com" not in template["templateData"]
    carried = tmp_path / "stage.tpl"
    carried.write_text(template["templateData"])
    data = {"pixelUrl": STAGE_API + "events", "eventName": "purchase", "endpointId": "ep-1"}
    other = data | {"pixelUrl": "https://other.execute-api.eu-west-1.amazonaws.com/api/events"}
    loading = run_once(carried, {"data": data})
    assert loading["calls"]["injectScript"][0][0] == STAGE_API + "pixel-relay.js"
    assert run_once(carried, {"data": data | {"transport": "image"}})["calls"]["sendPixel"]
    refused = run_once(carried, {"data": other})
    assert "sendPixel" not in refused["calls"]
    assert "injectScript" not in refused["calls"]
    assert refused["outcome"] == "failure"


def test_the_template_tag_sends_batched_unless_told_otherwise() -> None:
    def transport(document: dict[str, Any]) -> str:
        [tag] = [t for t in document["containerVersion"]["tag"] if t["name"] == "pixel-relay"]
        [field] = [p for p in tag["parameter"] if p["key"] == "transport"]
        return str(field["value"])

    assert transport(container(STAGE_API)) == "batched"
    assert transport(container(STAGE_API, transport="image")) == "image"
    with pytest.raises(ValueError, match="transport is one of batched, image"):
        container(STAGE_API, transport="beacon")


def test_the_trigger_fires_on_the_named_events_only() -> None:
    names = event_names("purchase, add.to-cart ,signup,purchase")
    assert names == ("purchase", "add.to-cart", "signup")
    pattern = re.compile(event_regex(names))  # the same meaning in JavaScript
    for fired in names:
        assert pattern.search(fired)
    for ignored in ("purchases", "my_purchase", "addXto-cart", "gtm.js", "cmp_consent", ""):
        assert not pattern.search(ignored), ignored
    trigger = container(API_URL_PLACEHOLDER, HitPolicy(), names)["containerVersion"]["trigger"][0]
    assert trigger["customEventFilter"][0]["parameter"][1]["value"] == event_regex(names)
    assert ".*" not in json.dumps(trigger)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "give at least one event name"),
        (" , ", "give at least one event name"),
        ("purchase,_internal", "'_internal'"),
        ("x" * 51, "'" + "x" * 51 + "'"),
    ],
)
def test_event_names_the_pixel_would_refuse_are_refused_with_the_reason(
    text: str, reason: str
) -> None:
    with pytest.raises(EventNamesError, match=re.escape(reason)):
        event_names(text)

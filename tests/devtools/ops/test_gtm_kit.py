"""The GTM container import file: GTM's export format, and an Image URL that, filled in the
way GTM fills it (variables inserted raw, Custom JavaScript run), is a hit the pixel accepts.

The Custom JavaScript variables run in Node.js (Debian's nodejs, on the machine image), with
GTM's variable references resolved as GTM does: Data Layer Variables from the data-layer
model, constants as written, `{{Event}}` the pushed event name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.parse
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.config import HitPolicy
from chalicelib.hits import parse_hit
from devtools.ops.gtm import (
    API_URL_PLACEHOLDER,
    CONTAINER_FILE,
    checked_in_container,
    container,
    render,
)
from devtools.paths import ROOT

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
const tag = version.tag[0];
let url = param(tag, 'url').replace(/\{\{([^}]+)\}\}/g, (_, n) => String(resolve(n)));
if (param(tag, 'useCacheBuster') === 'true') {
  url += (url.includes('?') ? '&' : '?') + param(tag, 'cacheBusterQueryParam') + '=' + 1234567890;
}
process.stdout.write(url);
"""


def node() -> str:
    found = shutil.which("node") or shutil.which("nodejs")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("node is missing: apt-get install -y nodejs")
        pytest.skip("node is missing: apt-get install -y nodejs")
    return found


def gtm_fills_in(document: dict[str, Any], data_layer: dict[str, Any]) -> str:
    result = subprocess.run(
        [node(), "-e", GTM_IN_NODE],
        input=json.dumps({"container": document, "dataLayer": data_layer}),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout


def as_the_pixel_reads_it(url: str) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query, keep_blank_values=True)


def test_checked_in_container_is_current_run_ops_gtm_if_not() -> None:
    assert checked_in_container() == render(container()), (
        f"{CONTAINER_FILE} is stale: run .venv/bin/python -m devtools.ops.gtm"
    )


def test_container_has_gtms_export_shape() -> None:
    document = json.loads((ROOT / CONTAINER_FILE).read_text())
    assert document["exportFormatVersion"] == 2
    version = document["containerVersion"]
    assert version["container"]["usageContext"] == ["WEB"]
    [tag] = version["tag"]
    [trigger] = version["trigger"]
    assert tag["type"] == "img"
    parameters = {p["key"]: p for p in tag["parameter"]}
    assert set(parameters) == {"url", "useCacheBuster", "cacheBusterQueryParam"}
    assert parameters["url"]["type"] == "TEMPLATE"
    assert parameters["useCacheBuster"] == {
        "type": "BOOLEAN",
        "key": "useCacheBuster",
        "value": "true",
    }
    assert parameters["cacheBusterQueryParam"]["value"] in HitPolicy().ignored_parameters
    assert tag["firingTriggerId"] == [trigger["triggerId"]]
    assert trigger["type"] == "CUSTOM_EVENT"
    [event_filter] = trigger["customEventFilter"]
    assert event_filter["parameter"][0] == {
        "type": "TEMPLATE",
        "key": "arg0",
        "value": "{{_event}}",
    }

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

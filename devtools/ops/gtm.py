"""The GTM kit: a container export that GTM's *Import Container* accepts, with the pixel-relay
tag template (gtm/pixel-relay-tag.tpl, in the export's customTemplate section) and a tag made
from it, and a Custom Image tag (paused) for people who want no template.

Both tags require `analytics_storage` consent (consentSettings) and fire on one Custom Event
trigger whose event names are an allowlist (`ops url --events purchase,signup`), never every
pushed event: vendor and consent-manager events would each cost a request and a refusal.
Only the template tag is active; the Image tag is imported paused, because two active tags
would record every event twice.

One Image URL serves every event: a Custom JavaScript variable turns the data-layer objects
(`attributes`, `metrics`, `userAttributes`, `endpointAttributes`, `endpointMetrics`, as the
demo page pushes them) into `evat_`/`evmt_`/`usat_`/`enat_`/`enmt_` parameters, each name and
value URL-encoded (GTM inserts variable values raw), leaving out values that are not set.
Profile parameters are sent only for names in the stage's ALLOWED_* settings: the pixel
refuses a whole hit for one profile attribute it does not allow, and the event would be lost.

`gtm/pixel-relay-container.json` is this module's output with no stage (API URL to fill in,
no profile attributes, the events of DEFAULT_EVENTS); `make ops ARGS="url --stage X
--events a,b --container FILE"` writes one with the stage's API URL, allowed names and event
names filled in, and the template's send_pixel and inject_script permissions narrowed to the
stage's API (its /events and its /pixel-relay.js). The template tag sends through the stage's
pixel-relay.js (batched beacons); `transport="image"` makes it send one image per event (the
demo page's container, whose relay takes image requests only).
Format: GTM's export format version 2 (exportFormatVersion, containerVersion with
tag/trigger/variable/builtInVariable/customTemplate), as GTM's own exports and the Tag
Manager API's tag, variable and consentSettings dictionaries describe it; a template tag's
type is `cvt_<containerId>_<templateId>`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from chalicelib import rules
from chalicelib.hits import HitPolicy
from chalicelib.rules import FieldError
from devtools.paths import GTM_CONTAINER, ROOT

CONTAINER_FILE: Final = GTM_CONTAINER
API_URL_PLACEHOLDER: Final = "https://YOUR-API-ID.execute-api.YOUR-REGION.amazonaws.com/api/"
CACHE_BUSTER: Final = "gtmcb"  # IGNORED_PARAMETERS' default

API_URL_VARIABLE: Final = "pixel-relay API URL"
EVENT_VARIABLE: Final = "enc event"
ENDPOINT_VARIABLE: Final = "enc endpointId"
EVENT_ID_VARIABLE: Final = "Event ID"
PARAMETERS_VARIABLE: Final = "pixel-relay parameters"
TAG_NAME: Final = "pixel-relay Image"
TEMPLATE_TAG_NAME: Final = "pixel-relay"
TRIGGER_NAME: Final = "pixel-relay events"
TEMPLATE_FILE: Final = GTM_CONTAINER.parent / "pixel-relay-tag.tpl"
TEMPLATE_NAME: Final = "pixel-relay event"
TEMPLATE_ID: Final = "1"
# The template's send_pixel and inject_script patterns as checked in; a stage's container
# narrows them to its API.
TEMPLATE_URL_PATTERN: Final = "https://*.amazonaws.com/"
URL_PERMISSIONS: Final = {"send_pixel": "events", "inject_script": "pixel-relay.js"}
TRANSPORTS: Final = ("batched", "image")
CONSENT_TYPE: Final = "analytics_storage"
# The events of the stage-less kit (the demo page's); `ops url --events` sets a stage's.
DEFAULT_EVENTS: Final = ("purchase", "signup")

# Data-layer key -> parameter prefix, in the order the parameters are appended.
DATA_LAYER_GROUPS: Final = (
    ("attributes", "evat_"),
    ("metrics", "evmt_"),
    ("userAttributes", "usat_"),
    ("endpointAttributes", "enat_"),
    ("endpointMetrics", "enmt_"),
)
DATA_LAYER_GROUPS_BY_PREFIX: Final = tuple((prefix, key) for key, prefix in DATA_LAYER_GROUPS)
ENDPOINT_KEY: Final = "endpointId"

TAG_URL: Final = (
    f"{{{{{API_URL_VARIABLE}}}}}events?event={{{{{EVENT_VARIABLE}}}}}"
    f"&endpoint_id={{{{{ENDPOINT_VARIABLE}}}}}&event_id={{{{{EVENT_ID_VARIABLE}}}}}"
    f"{{{{{PARAMETERS_VARIABLE}}}}}"
)

_ENCODE_EVENT_JS: Final = """function() {
  // GTM inserts variable values into the URL raw: encode the event name.
  var value = {{Event}};
  return value === undefined || value === null ? '' : encodeURIComponent(String(value));
}"""

_ENCODE_ENDPOINT_JS: Final = """function() {
  // Empty when not set: the pixel then refuses the hit, naming endpoint_id (GTM preview).
  var value = {{DLV endpointId}};
  return value === undefined || value === null ? '' : encodeURIComponent(String(value));
}"""

# A new id per hit (never from the data layer: a pushed value would persist in GTM's data
# model and give later events the same id, and Pinpoint drops repeated ids).
_EVENT_ID_JS: Final = """function() {
  if (window.crypto && typeof window.crypto.randomUUID === 'function') {
    return window.crypto.randomUUID();
  }
  return 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, function(c) {
    var r = Math.random() * 16 | 0;
    return (c === 'x' ? r : (r & 0x3 | 0x8)).toString(16);
  });
}"""


def _parameters_js(policy: HitPolicy) -> str:
    """The Custom JavaScript variable that appends every optional parameter, encoded."""
    allowed = {
        "usat_": sorted(policy.allowed_user_attributes),
        "enat_": sorted(policy.allowed_endpoint_attributes),
        "enmt_": sorted(policy.allowed_endpoint_metrics),
    }
    groups = ",\n".join(f"    ['{prefix}', {{{{DLV {key}}}}}]" for key, prefix in DATA_LAYER_GROUPS)
    return f"""function() {{
  // Names this stage lets anonymous hits write (ALLOWED_* in .chalice/config.json); any
  // other profile attribute would make the pixel refuse the whole hit.
  var allowed = {json.dumps(allowed, sort_keys=True)};
  var groups = [
{groups}
  ];
  var query = '';
  for (var g = 0; g < groups.length; g++) {{
    var prefix = groups[g][0], values = groups[g][1];
    if (!values || typeof values !== 'object') continue;
    for (var name in values) {{
      if (!Object.prototype.hasOwnProperty.call(values, name)) continue;
      if (allowed[prefix] && allowed[prefix].indexOf(name) < 0) continue;
      var list = Object.prototype.toString.call(values[name]) === '[object Array]'
        ? values[name] : [values[name]];
      for (var i = 0; i < list.length; i++) {{
        if (list[i] === undefined || list[i] === null) continue;
        query += '&' + prefix + encodeURIComponent(name) + '='
          + encodeURIComponent(String(list[i]));
      }}
    }}
  }}
  return query;
}}"""


class EventNamesError(ValueError):
    """An --events list the pixel would refuse, with the reason."""


def event_names(text: str) -> tuple[str, ...]:
    """`purchase,signup` -> the names, each checked with the pixel's rule for `event`."""
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        raise EventNamesError("--events: give at least one event name, e.g. purchase,signup")
    for name in names:
        try:
            rules.event_type("event", name)
        except FieldError as error:
            raise EventNamesError(f"--events: {name!r}: {error.rule}") from None
    return names


def event_regex(names: Sequence[str]) -> str:
    """A regex matching exactly these event names (GTM's trigger matches a substring)."""
    escaped = (re.sub(r"([\\^$.|?*+()\[\]{}/-])", r"\\\1", name) for name in names)
    return "^(" + "|".join(escaped) + ")$"


def template_data(api_url: str, root: Path = ROOT) -> str:
    """The web tag template as the container carries it. For a stage, its send_pixel
    permission allows that stage's /events only and its inject_script permission that
    stage's /pixel-relay.js (the checked-in file allows any https://*.amazonaws.com/ URL)."""
    text = (root / TEMPLATE_FILE).read_text()
    if api_url == API_URL_PLACEHOLDER:
        return text
    before, header, rest = text.partition("___WEB_PERMISSIONS___")
    block, tests_header, after = rest.partition("\n___TESTS___")
    if not header or not tests_header:
        raise RuntimeError(f"{TEMPLATE_FILE}: no ___WEB_PERMISSIONS___ before ___TESTS___")
    permissions = json.loads(block)
    narrowed = 0
    for entry in permissions:
        public_id = entry["instance"]["key"]["publicId"]
        if public_id not in URL_PERMISSIONS:
            continue
        for param in entry["instance"]["param"]:
            if param["key"] != "urls":
                continue
            patterns = [item.get("string") for item in param["value"]["listItem"]]
            if patterns != [TEMPLATE_URL_PATTERN]:
                raise RuntimeError(
                    f"{TEMPLATE_FILE}: {public_id}'s URL pattern is not where expected"
                )
            param["value"]["listItem"] = [
                {"type": 1, "string": api_url + URL_PERMISSIONS[public_id]}
            ]
            narrowed += 1
    if narrowed != len(URL_PERMISSIONS):
        raise RuntimeError(f"{TEMPLATE_FILE}: expected the URL patterns of {set(URL_PERMISSIONS)}")
    return f"{before}{header}\n\n{json.dumps(permissions, indent=2)}\n\n{tests_header}{after}"


def _template(key: str, value: str) -> dict[str, str]:
    return {"type": "TEMPLATE", "key": key, "value": value}


def _ids() -> dict[str, str]:
    return {"accountId": "0", "containerId": "0"}


@dataclass(frozen=True)
class _Variable:
    name: str
    type: str
    parameter: list[dict[str, str]]


def _variables(api_url: str, policy: HitPolicy) -> list[_Variable]:
    data_layer = [
        _Variable(
            f"DLV {key}",
            "v",
            [
                {"type": "INTEGER", "key": "dataLayerVersion", "value": "2"},
                {"type": "BOOLEAN", "key": "setDefaultValue", "value": "false"},
                _template("name", key),
            ],
        )
        for key in (ENDPOINT_KEY, *(key for key, _ in DATA_LAYER_GROUPS))
    ]
    return [
        _Variable(API_URL_VARIABLE, "c", [_template("value", api_url)]),
        *data_layer,
        _Variable(EVENT_VARIABLE, "jsm", [_template("javascript", _ENCODE_EVENT_JS)]),
        _Variable(ENDPOINT_VARIABLE, "jsm", [_template("javascript", _ENCODE_ENDPOINT_JS)]),
        _Variable(EVENT_ID_VARIABLE, "jsm", [_template("javascript", _EVENT_ID_JS)]),
        _Variable(PARAMETERS_VARIABLE, "jsm", [_template("javascript", _parameters_js(policy))]),
    ]


def _condition(kind: str, left: str, right: str, negate: bool = False) -> dict[str, Any]:
    parameter: list[dict[str, str]] = [_template("arg0", left), _template("arg1", right)]
    if negate:
        parameter.append({"type": "BOOLEAN", "key": "negate", "value": "true"})
    return {"type": kind, "parameter": parameter}


def _consent() -> dict[str, Any]:
    return {
        "consentStatus": "NEEDED",
        "consentType": {"type": "LIST", "list": [{"type": "TEMPLATE", "value": CONSENT_TYPE}]},
    }


def _boolean(key: str, value: bool) -> dict[str, str]:
    return {"type": "BOOLEAN", "key": key, "value": "true" if value else "false"}


def _row(**cells: str) -> dict[str, Any]:
    return {"type": "MAP", "map": [_template(key, value) for key, value in cells.items()]}


def _profile_variable(prefix: str, name: str) -> str:
    key = dict(DATA_LAYER_GROUPS_BY_PREFIX)[prefix]
    return f"DLV {key}.{name}"


def _template_tag_parameters(policy: HitPolicy, transport: str) -> list[dict[str, Any]]:
    """The template tag's fields: the same data-layer model as the Image tag; one profile
    row per name the stage allows, read from the data layer (unset values are left out)."""
    profile = [
        _row(kind=prefix, name=name, value=f"{{{{{_profile_variable(prefix, name)}}}}}")
        for prefix, name in _allowed_profile_names(policy)
    ]
    return [
        _template("pixelUrl", f"{{{{{API_URL_VARIABLE}}}}}events"),
        _template("eventName", "{{Event}}"),
        _template("endpointId", f"{{{{DLV {ENDPOINT_KEY}}}}}"),
        _template("eventId", f"{{{{{EVENT_ID_VARIABLE}}}}}"),
        _template("eventAttributesObject", "{{DLV attributes}}"),
        _template("eventMetricsObject", "{{DLV metrics}}"),
        {"type": "LIST", "key": "profileAttributes", "list": profile},
        _template("transport", transport),
        _boolean("requireAnalyticsStorage", True),
    ]


def _allowed_profile_names(policy: HitPolicy) -> list[tuple[str, str]]:
    return [
        (prefix, name)
        for prefix, names in (
            ("usat_", policy.allowed_user_attributes),
            ("enat_", policy.allowed_endpoint_attributes),
            ("enmt_", policy.allowed_endpoint_metrics),
        )
        for name in sorted(names)
    ]


def container(
    api_url: str = API_URL_PLACEHOLDER,
    policy: HitPolicy | None = None,
    events: Sequence[str] = DEFAULT_EVENTS,
    transport: str = "batched",
) -> dict[str, Any]:
    """A GTM container export (format version 2) with the pixel-relay template, its tag, the
    Image tag (paused), the trigger for `events` and the variables. `api_url` ends with `/`
    (the stage's base, as `chalice url` prints it); `transport` is the template tag's."""
    policy = policy or HitPolicy()
    if transport not in TRANSPORTS:
        raise ValueError(f"transport is one of {', '.join(TRANSPORTS)}, not {transport!r}")
    if not api_url.endswith("/"):
        api_url += "/"
    trigger_id = "1"
    profile_variables = [
        _Variable(
            _profile_variable(prefix, name),
            "v",
            [
                {"type": "INTEGER", "key": "dataLayerVersion", "value": "2"},
                {"type": "BOOLEAN", "key": "setDefaultValue", "value": "false"},
                _template("name", _profile_variable(prefix, name).removeprefix("DLV ")),
            ],
        )
        for prefix, name in _allowed_profile_names(policy)
    ]
    variables = [
        {
            **_ids(),
            "variableId": str(index),
            "name": v.name,
            "type": v.type,
            "parameter": v.parameter,
        }
        for index, v in enumerate([*_variables(api_url, policy), *profile_variables], start=1)
    ]
    return {
        "exportFormatVersion": 2,
        "exportTime": "2026-11-28 00:00:00",
        "containerVersion": {
            "path": "accounts/0/containers/0/versions/0",
            **_ids(),
            "containerVersionId": "0",
            "container": {
                "path": "accounts/0/containers/0",
                **_ids(),
                "name": "pixel-relay",
                "publicId": "GTM-XXXXXXX",
                "usageContext": ["WEB"],
            },
            "tag": [
                {
                    **_ids(),
                    "tagId": "1",
                    "name": TAG_NAME,
                    "type": "img",
                    "parameter": [
                        {"type": "BOOLEAN", "key": "useCacheBuster", "value": "true"},
                        _template("url", TAG_URL),
                        _template("cacheBusterQueryParam", CACHE_BUSTER),
                    ],
                    "firingTriggerId": [trigger_id],
                    "tagFiringOption": "ONCE_PER_EVENT",
                    "paused": True,
                    "consentSettings": _consent(),
                    "notes": "pixel-relay without a template: paused, because the template tag"
                    f" '{TEMPLATE_TAG_NAME}' sends the same events (unpause this one and pause"
                    " that one to use it). Answers 200 (a GIF) when the event is queued; 400"
                    " names the broken rule (network panel, X-Pixel-Relay-Refusal header); 503"
                    " when it could not be queued. See docs/gtm-setup.md.",
                },
                {
                    **_ids(),
                    "tagId": "2",
                    "name": TEMPLATE_TAG_NAME,
                    "type": f"cvt_{_ids()['containerId']}_{TEMPLATE_ID}",
                    "parameter": _template_tag_parameters(policy, transport),
                    "firingTriggerId": [trigger_id],
                    "tagFiringOption": "ONCE_PER_EVENT",
                    "consentSettings": _consent(),
                    "notes": "pixel-relay through its tag template: every value encoded by the"
                    " template; hits batched into beacons by the stage's pixel-relay.js, so"
                    " events fired as the page unloads arrive too. See docs/gtm-setup.md.",
                },
            ],
            "trigger": [
                {
                    **_ids(),
                    "triggerId": trigger_id,
                    "name": TRIGGER_NAME,
                    "type": "CUSTOM_EVENT",
                    # Only the events named (ops url --events), once the page has pushed an
                    # endpointId.
                    "customEventFilter": [
                        _condition("MATCH_REGEX", "{{_event}}", event_regex(events))
                    ],
                    "filter": [
                        _condition("EQUALS", f"{{{{DLV {ENDPOINT_KEY}}}}}", "undefined", True),
                    ],
                }
            ],
            "variable": variables,
            "builtInVariable": [{**_ids(), "type": "EVENT", "name": "Event"}],
            "customTemplate": [
                {
                    **_ids(),
                    "templateId": TEMPLATE_ID,
                    "name": TEMPLATE_NAME,
                    "fingerprint": "0",
                    "templateData": template_data(api_url),
                }
            ],
        },
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_container(
    path: Path, api_url: str, policy: HitPolicy, events: Sequence[str] = DEFAULT_EVENTS
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(container(api_url, policy, events)))
    return path


def checked_in_container(root: Path = ROOT) -> str:
    return (root / CONTAINER_FILE).read_text()


def profile_parameters(policy: HitPolicy) -> Iterable[tuple[str, str]]:
    """(parameter, data-layer source) for every profile name the stage allows."""
    for prefix, key, names in (
        ("usat_", "userAttributes", policy.allowed_user_attributes),
        ("enat_", "endpointAttributes", policy.allowed_endpoint_attributes),
        ("enmt_", "endpointMetrics", policy.allowed_endpoint_metrics),
    ):
        for name in sorted(names):
            yield f"{prefix}{name}", f"{key}.{name}"


if __name__ == "__main__":
    # Regenerate the checked-in, stage-less kit.
    print(write_container(ROOT / CONTAINER_FILE, API_URL_PLACEHOLDER, HitPolicy()))

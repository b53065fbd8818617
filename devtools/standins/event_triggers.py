"""Customer Profiles event triggers, as the local stand-in keeps and evaluates them.

The stand-in (`devtools.standins.customer_profiles`) hands the four trigger operations
(CreateEventTrigger, GetEventTrigger, UpdateEventTrigger, ListEventTriggers) to a domain's
`EventTriggers`, and asks it, for each object it accepts, which triggers that object fires:
the stand-in then starts the campaign an integration links to the trigger (PutIntegration),
on the Connect outbound campaigns stand-in, and the demo page shows "campaign X would reach
profile Y".

What is evaluated, as the Customer Profiles API reference describes it: the trigger's object
type; its conditions (any condition may match; in one condition `LogicalOperator` ALL, ANY
or NONE over the dimensions; in one dimension every object attribute must match); an object
attribute reads the object type's field (`FieldName`) or the object (`Source`,
`_source.a.b`); `EventTriggerLimits.Periods` (at most `MaxInvocationsPerProfile` starts
per profile in `Value` `Unit`s, unless `Unlimited`) and `EventExpiration` ("In
milliseconds. Specifies that an event will only trigger the destination if it is processed
within a certain latency period": read here as the time since the object's source
timestamp, the one event time the service knows; AWS may measure it from ingestion instead,
which is why pixel-relay's triggers also require the object's own `on_time`). Not
evaluated, and said so in the verdict: date operators (BEFORE, AFTER, ON, BETWEEN,
NOT_BETWEEN), INCLUSIVE and EXCLUSIVE, and `SegmentFilter` (the stand-in has no segments).
Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from devtools.standins.base import JsonObject, RequestError

OPERATIONS: Final = frozenset(
    {"CreateEventTrigger", "GetEventTrigger", "UpdateEventTrigger", "ListEventTriggers"}
)
_UPDATABLE: Final = (
    "ObjectTypeName",
    "Description",
    "EventTriggerConditions",
    "SegmentFilter",
    "EventTriggerLimits",
)
_UNIT_SECONDS: Final[dict[str, float]] = {
    "MINUTES": 60,
    "HOURS": 3600,
    "DAYS": 86_400,
    "WEEKS": 7 * 86_400,
    "MONTHS": 30 * 86_400,
}
_NUMERIC: Final[dict[str, Callable[[float, float], bool]]] = {
    "GREATER_THAN": lambda value, bound: value > bound,
    "LESS_THAN": lambda value, bound: value < bound,
    "GREATER_THAN_OR_EQUAL": lambda value, bound: value >= bound,
    "LESS_THAN_OR_EQUAL": lambda value, bound: value <= bound,
}
_TEXT: Final[dict[str, Callable[[str, str], bool]]] = {
    "EQUAL": lambda value, wanted: value == wanted,
    "CONTAINS": lambda value, wanted: wanted in value,
    "BEGINS_WITH": lambda value, wanted: value.startswith(wanted),
    "ENDS_WITH": lambda value, wanted: value.endswith(wanted),
}


class NotEvaluatedError(Exception):
    """A condition the stand-in cannot judge; the verdict says which."""


@dataclass(frozen=True)
class TriggerVerdict:
    """One trigger an accepted object matched, whether it fired (its limits and expiration
    allow a start) and, once the stand-in has asked, what the linked campaign did."""

    name: str
    would_start: bool
    reason: str = ""  # why not (a limit, no profile, expired), or what was assumed
    profile_id: str | None = None
    campaign_arn: str | None = None  # the integration's Uri, when one links a campaign
    campaign_reached: bool = False  # the campaign accepted the outbound request
    campaign_reason: str = ""  # why it did not (or "no campaign is linked")

    def to_json(self) -> JsonObject:
        return {
            "EventTriggerName": self.name,
            "WouldStart": self.would_start,
            "Reason": self.reason,
            "ProfileId": self.profile_id,
            "Campaign": self.campaign_arn,
            "CampaignReached": self.campaign_reached,
            "CampaignReason": self.campaign_reason,
        }


@dataclass
class EventTriggers:
    """One domain's triggers (by name) and the starts counted against their limits."""

    clock: Callable[[], float] = time.time
    triggers: dict[str, JsonObject] = field(default_factory=dict)
    starts: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    # The API

    def handle(
        self, operation: str, name: str | None, body: JsonObject, object_types: Mapping[str, Any]
    ) -> JsonObject:
        """Answer one trigger operation (the stand-in checked the request against the model)."""
        if operation == "ListEventTriggers":
            items = [
                {k: t[k] for k in ("EventTriggerName", "ObjectTypeName", "Description") if k in t}
                | {"CreatedAt": t["CreatedAt"], "LastUpdatedAt": t["LastUpdatedAt"]}
                for _, t in sorted(self.triggers.items())
            ]
            return {"Items": items}
        assert name is not None
        current = self.triggers.get(name)
        if operation == "GetEventTrigger":
            if current is None:
                raise RequestError(404, f"Event trigger {name} was not found")
            return copy.deepcopy(current)
        object_type = body.get("ObjectTypeName") or (current or {}).get("ObjectTypeName")
        if object_type not in object_types:
            raise RequestError(404, f"Object type {object_type} was not found")
        now = self.clock()
        if operation == "CreateEventTrigger":
            if current is not None:
                raise RequestError(400, f"Event trigger {name} already exists")
            trigger = {**copy.deepcopy(body), "EventTriggerName": name}
            trigger.update(CreatedAt=now, LastUpdatedAt=now)
        else:  # UpdateEventTrigger
            if current is None:
                raise RequestError(404, f"Event trigger {name} was not found")
            trigger = {**current, **{k: copy.deepcopy(body[k]) for k in _UPDATABLE if k in body}}
            trigger["LastUpdatedAt"] = now
        self.triggers[name] = trigger
        return copy.deepcopy(trigger)

    # Evaluation

    def evaluate(
        self,
        object_type: str,
        fields: Mapping[str, str | None],
        source: Mapping[str, Any],
        profile_id: str | None,
        source_time: float | None = None,
    ) -> list[TriggerVerdict]:
        """The triggers this accepted object fires, in name order; starts are counted.
        `source_time`: the object's source timestamp (seconds), if its type names one."""
        verdicts: list[TriggerVerdict] = []
        for name, trigger in sorted(self.triggers.items()):
            if trigger.get("ObjectTypeName") != object_type:
                continue
            try:
                if not _conditions_match(trigger.get("EventTriggerConditions", []), fields, source):
                    continue
            except NotEvaluatedError as error:
                verdicts.append(TriggerVerdict(name, False, f"not evaluated: {error}"))
                continue
            verdicts.append(self._start(name, trigger, profile_id, source_time))
        return verdicts

    def _start(
        self, name: str, trigger: JsonObject, profile_id: str | None, source_time: float | None
    ) -> TriggerVerdict:
        if profile_id is None:
            return TriggerVerdict(name, False, "the object is on no profile")
        now = self.clock()
        expiration = trigger.get("EventTriggerLimits", {}).get("EventExpiration")
        if expiration is not None and source_time is not None:
            age = now - source_time
            if age * 1000 > int(expiration):
                late = (
                    f"{age:.0f} s after the event; EventExpiration is {int(expiration) // 1000} s"
                )
                return TriggerVerdict(name, False, f"expired: processed {late}", profile_id)
        starts = self.starts.setdefault((name, profile_id), [])
        for period in trigger.get("EventTriggerLimits", {}).get("Periods", []):
            if period.get("Unlimited") or "MaxInvocationsPerProfile" not in period:
                continue
            window = _UNIT_SECONDS[period["Unit"]] * int(period["Value"])
            recent = sum(1 for at in starts if now - at < window)
            if recent >= int(period["MaxInvocationsPerProfile"]):
                most, value, unit = (
                    period["MaxInvocationsPerProfile"],
                    period["Value"],
                    period["Unit"],
                )
                limit = f"{most} per {value} {unit}"
                reason = f"limit reached for this profile ({limit})"
                return TriggerVerdict(name, False, reason, profile_id)
        starts.append(now)
        segment = trigger.get("SegmentFilter")
        assumed = f"if the profile is in segment {segment} (not evaluated here)" if segment else ""
        return TriggerVerdict(name, True, assumed, profile_id)


def _conditions_match(
    conditions: list[JsonObject], fields: Mapping[str, str | None], source: Mapping[str, Any]
) -> bool:
    """Any condition matching fires the trigger."""
    for condition in conditions:
        matches = [
            all(_attribute_matches(a, fields, source) for a in dimension["ObjectAttributes"])
            for dimension in condition["EventTriggerDimensions"]
        ]
        operator = condition["LogicalOperator"]
        if (
            (operator == "ALL" and all(matches))
            or (operator == "ANY" and any(matches))
            or (operator == "NONE" and not any(matches))
        ):
            return True
    return False


def _attribute_matches(
    attribute: JsonObject, fields: Mapping[str, str | None], source: Mapping[str, Any]
) -> bool:
    operator = attribute["ComparisonOperator"]
    if operator not in _TEXT and operator not in _NUMERIC:
        raise NotEvaluatedError(f"the stand-in does not evaluate {operator}")
    value = _value(attribute, fields, source)
    if value is None:
        return False
    wanted = [str(v) for v in attribute["Values"]]
    if operator in _TEXT:
        return any(_TEXT[operator](value, w) for w in wanted)
    try:
        return _NUMERIC[operator](float(value), float(wanted[0]))
    except ValueError:
        return False


def _value(
    attribute: JsonObject, fields: Mapping[str, str | None], source: Mapping[str, Any]
) -> str | None:
    if "FieldName" in attribute:
        return fields.get(attribute["FieldName"])
    accessor = str(attribute.get("Source", ""))
    if not accessor.startswith("_source."):
        raise NotEvaluatedError(f"the stand-in reads only _source.<path>, not {accessor!r}")
    node: Any = source
    for part in accessor.removeprefix("_source.").split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, str | int | float):
        return None
    return str(node)

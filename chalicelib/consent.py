"""Consent at delivery: an event reaches a destination only with the consent it needs there.

The pixel never refuses a hit for its consent state: it records the state the tag sent (the
`consent` parameter, `Event.consent`). What a destination needs is the stage's setting
`CONSENT_REQUIRED`, per destination the consent types an event must carry as granted, e.g.
`customer-profiles=ad_user_data+ad_personalization,pinpoint=analytics_storage`. An event
without them is not sent to that destination: it is settled there as done (never parked,
never retried, not an error) and counted as `ConsentWithheld` with the destination's name.

An event that carries no state for a required type (an Image tag, a template without
Consent Mode, an older message) is judged by `CONSENT_WHEN_UNKNOWN`: `denied` (the default:
nothing goes where consent is required unless the visitor is known to have given it) or
`granted`. docs/consent.md has the whole story.

`ConsentFiltered` wraps a destination, as `dedupe.Deduplicated` does: the destination sees
only the events it may have.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from chalicelib import telemetry
from chalicelib.destinations import registry
from chalicelib.env import ConfigError
from chalicelib.events import Event
from chalicelib.outcomes import Outcome, Recipient, TimeLeft, Verdict
from chalicelib.rules import CONSENT_TYPES

REQUIRED_VARIABLE: Final = "CONSENT_REQUIRED"
UNKNOWN_VARIABLE: Final = "CONSENT_WHEN_UNKNOWN"
WHEN_UNKNOWN: Final = ("denied", "granted")
# The outcome of an event withheld from a destination: done there, nothing sent.
WITHHELD: Final = Outcome(Verdict.DELIVERED, "withheld: consent not granted")


@dataclass(frozen=True)
class ConsentSettings:
    """Per destination, the consent types an event must carry as granted; and how an event
    that carries no state for a type is read."""

    required: Mapping[str, frozenset[str]] = field(default_factory=dict)
    unknown_granted: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ConsentSettings:
        when = environ.get(UNKNOWN_VARIABLE, "").strip().lower() or "denied"
        if when not in WHEN_UNKNOWN:
            raise ConfigError(UNKNOWN_VARIABLE, "must be denied or granted")
        return cls(
            required=parse_required(environ.get(REQUIRED_VARIABLE, "")),
            unknown_granted=when == "granted",
        )

    def permits(self, destination: str, event: Event) -> bool:
        """Whether `event` carries every consent `destination` requires."""
        needed = self.required.get(destination)
        if not needed:
            return True
        states = event.consent or {}
        for consent_type in needed:
            state = states.get(consent_type)
            if state is None:
                if not self.unknown_granted:
                    return False
            elif state != "granted":
                return False
        return True


def parse_required(raw: str) -> dict[str, frozenset[str]]:
    """`destination=type+type,destination=type`: known destinations, known consent types,
    each destination once."""
    required: dict[str, frozenset[str]] = {}
    if not raw.strip():
        return required
    known = registry.known()
    for entry in raw.split(","):
        name, separator, types = (part.strip() for part in entry.partition("="))
        if not separator or not name or not types:
            raise ConfigError(
                REQUIRED_VARIABLE,
                "write destination=type+type pairs separated by commas, e.g. "
                "customer-profiles=ad_user_data+ad_personalization",
            )
        if name not in known:
            raise ConfigError(
                REQUIRED_VARIABLE, f"unknown destination {name!r}; known: {', '.join(known)}"
            )
        if name in required:
            raise ConfigError(REQUIRED_VARIABLE, f"names {name} twice")
        chosen = [kind.strip() for kind in types.split("+")]
        unknown = [kind for kind in chosen if kind not in CONSENT_TYPES]
        if unknown:
            shown = ", ".join(repr(kind) for kind in unknown)
            raise ConfigError(
                REQUIRED_VARIABLE,
                f"unknown consent type {shown} for {name}; known: {', '.join(CONSENT_TYPES)}",
            )
        required[name] = frozenset(chosen)
    return required


class ConsentFiltered:
    """A destination that receives only the events carrying the consent it requires."""

    def __init__(self, destination: Recipient, settings: ConsentSettings) -> None:
        self.name = destination.name
        self._destination = destination
        self._settings = settings

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        permitted = [
            i for i, event in enumerate(events) if self._settings.permits(self.name, event)
        ]
        if len(permitted) == len(events):
            return self._destination.deliver(events, time_left)
        outcomes = [WITHHELD] * len(events)
        if permitted:
            answers = self._destination.deliver([events[i] for i in permitted], time_left)
            for index, outcome in zip(permitted, answers, strict=True):
                outcomes[index] = outcome
        withheld = len(events) - len(permitted)
        telemetry.count_for_destination("ConsentWithheld", self.name, withheld)
        telemetry.logger.info(
            "events withheld for consent", extra={"destination": self.name, "events": withheld}
        )
        return outcomes


def with_consent(destination: Recipient, settings: ConsentSettings) -> Recipient:
    """`destination`, filtered when the stage requires consent for it."""
    if not settings.required.get(destination.name):
        return destination
    return ConsentFiltered(destination, settings)

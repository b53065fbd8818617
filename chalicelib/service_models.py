"""AWS's own rules for a request member, read from the service models botocore ships.

A destination's resource settings (a stream, a bus, a domain) are checked against the shape
the service's API gives them (pattern, minimum and maximum length), so a value the service
would refuse fails at start, naming the variable, and the rules follow botocore upgrades.
Read with botocore's public loader (`botocore.loaders.create_loader`), never through a
session: a settings check must not depend on an AWS profile or credentials.

The consumer and the deploy tools parse destination settings; the pixel never imports this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.loaders import Loader
    from botocore.model import ServiceModel

# A member's place in a model: the service (botocore's name), the operation, then the
# member names down to it (a list's member is stepped into without naming it).
ModelPath = tuple[str, ...]


@dataclass(frozen=True)
class ModelRule:
    """The constraints botocore's service model puts on one request member."""

    shape: str
    pattern: re.Pattern[str] | None
    min_length: int | None
    max_length: int | None

    def problem(self, value: str) -> str | None:
        """Why the service would refuse `value` (a ParamValidationError or a 400), or None."""
        low, high = self.min_length, self.max_length
        if (low is not None and len(value) < low) or (high is not None and len(value) > high):
            return f"must be {low or 0}-{high or 'any'} characters ({self.shape})"
        if self.pattern is not None and not self.pattern.fullmatch(value):
            return f"must match {self.pattern.pattern} ({self.shape})"
        return None


@cache
def model_rule(service: str, operation: str, *path: str) -> ModelRule:
    """The pattern and lengths of the member at `path` of `operation`'s input."""
    return _rule_at(service, service_model(service).operation_model(operation).input_shape, path)


@cache
def output_rule(service: str, operation: str, *path: str) -> ModelRule:
    """The same for a member of `operation`'s output: a resource's ARN as the service
    writes it (connectcampaignsv2's CampaignArn appears in outputs only)."""
    return _rule_at(service, service_model(service).operation_model(operation).output_shape, path)


def _rule_at(service: str, shape: Any, path: tuple[str, ...]) -> ModelRule:
    for member in path:
        if shape.type_name == "list":
            shape = shape.member
        shape = shape.members[member]
    return _rule(service, shape)


@cache
def shape_rule(service: str, shape_name: str) -> ModelRule:
    """The pattern and lengths of a shape the model names (DynamoDB's `TableName`: a
    table's own name, where requests also take an ARN)."""
    return _rule(service, service_model(service).shape_for(shape_name))


def _rule(service: str, shape: Any) -> ModelRule:
    metadata = shape.metadata
    pattern = metadata.get("pattern")
    return ModelRule(
        shape=f"botocore's {service} model, shape {shape.name}",
        # Java-style patterns; \w and friends are ASCII there.
        pattern=None if pattern is None else re.compile(pattern, re.ASCII),
        min_length=metadata.get("min"),
        max_length=metadata.get("max"),
    )


@cache
def service_model(service: str) -> ServiceModel:
    """The service's model (its newest API version), loaded once per process."""
    from botocore.model import ServiceModel

    return ServiceModel(_loader().load_service_model(service, "service-2"), service)


@cache
def _loader() -> Loader:
    from botocore.loaders import create_loader

    return create_loader()

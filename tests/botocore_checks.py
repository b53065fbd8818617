"""botocore's own checks on a request, as it runs them before sending: the model's
validation, then serialisation."""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore.session
from botocore.model import OperationModel
from botocore.serialize import create_serializer
from botocore.validate import ParamValidator


@cache
def _operation(service: str, operation: str) -> OperationModel:
    return botocore.session.get_session().get_service_model(service).operation_model(operation)


def assert_model_accepts(service: str, operation: str, params: dict[str, Any]) -> None:
    """botocore's own checks before sending: the model's validation, then serialisation
    (a datetime it cannot write, a body it cannot encode, would raise here)."""
    model = _operation(service, operation)
    assert model.input_shape is not None
    report = ParamValidator().validate(params, model.input_shape)
    assert not report.has_errors(), report.generate_report()
    request = create_serializer(model.metadata["protocol"]).serialize_to_request(params, model)
    assert request["body"] is not None

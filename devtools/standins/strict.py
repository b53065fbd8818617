"""Every rule AWS states for a request: the whole of botocore's model, then AWS's documented
limits that the model does not carry. The check the stand-ins and the moto proxy
(`devtools.standins.moto_proxy`) apply to every request, so that nothing a test or `make dev`
sends is accepted locally and refused by AWS.

botocore's own `ParamValidator` checks required members, types, unions and minimums only. On
top of it (`model_problems`):

- strings: the maximum length (counted in UTF-16 code units, as AWS's Java services count),
  the pattern (matched whole, a Java-style pattern read with the `regex` package, which knows
  `\\p{L}` and friends) and the enum;
- numbers: the maximum (and the minimum of a float, which botocore skips);
- lists and maps: the maximum number of members or entries;
- blobs: the maximum number of bytes.

AWS's documented limits beyond the model (`devtools.standins.limits`, one module per
service, each rule with the words it comes from; docs/development.md, "Strict stand-ins and
moto"): items per call, record, entry and request sizes, SQS's message rules.
Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import botocore.session
import regex
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.validate import ParamValidator

from devtools.standins.limits import documented_problems

Params = Mapping[str, Any]


@functools.cache
def service_model(service: str) -> ServiceModel:
    """botocore's model of one service (loaded once per process)."""
    return botocore.session.get_session().get_service_model(service)


def operation(service: str, name: str) -> OperationModel:
    """botocore's model of one operation."""
    return service_model(service).operation_model(name)


def problems(service: str, name: str, params: Params) -> list[str]:
    """Everything AWS would refuse in this request (empty when it would accept it)."""
    return model_problems(service, name, params) + documented_problems(service, name, params)


def model_problems(service: str, name: str, params: Params) -> list[str]:
    """botocore's validation, then every constraint of the model it leaves out."""
    shape = operation(service, name).input_shape
    if shape is None:
        return []
    report = ParamValidator().validate(dict(params), shape)
    found = [report.generate_report()] if report.has_errors() else []
    found.extend(_walk(shape, params, ""))
    return found


# The model's constraints botocore does not check ------------------------------------------


def utf16_length(text: str) -> int:
    """A string's length as AWS's Java services count it."""
    return len(text.encode("utf-16-le")) // 2


@functools.cache
def _pattern(source: str) -> regex.Pattern[str]:
    return regex.compile(source)


def _walk(shape: Shape, value: Any, name: str) -> list[str]:
    """The constraints of `shape` that `value` breaks (a value of the wrong type is
    botocore's to report, and skipped here)."""
    kind = shape.type_name
    meta = shape.metadata
    where = name or "the request"
    if kind == "structure" and isinstance(value, Mapping):
        if getattr(shape, "is_document_type", False):
            return []
        members = shape.members  # type: ignore[attr-defined]
        found: list[str] = []
        for key, item in value.items():
            if key in members and item is not None:
                found.extend(_walk(members[key], item, f"{name}.{key}" if name else key))
        return found
    if kind == "list" and isinstance(value, list | tuple):
        found = _count(where, len(value), meta, "members")
        member = shape.member  # type: ignore[attr-defined]
        for index, item in enumerate(value):
            found.extend(_walk(member, item, f"{name}[{index}]"))
        return found
    if kind == "map" and isinstance(value, Mapping):
        found = _count(where, len(value), meta, "entries")
        key_shape, value_shape = shape.key, shape.value  # type: ignore[attr-defined]
        for key, item in value.items():
            found.extend(_walk(key_shape, key, f"{name} key {key!r}"))
            found.extend(_walk(value_shape, item, f"{name}[{key!r}]"))
        return found
    if kind == "string" and isinstance(value, str):
        return _string(shape, value, where)
    if kind in ("integer", "long", "float", "double") and isinstance(value, int | float):
        return _range(where, value, meta)
    if kind == "blob" and isinstance(value, bytes | bytearray):
        high = meta.get("max")
        if high is not None and len(value) > high:
            return [f"{where}: {len(value)} bytes; the model allows at most {high}"]
    return []


def _count(where: str, count: int, meta: Mapping[str, Any], what: str) -> list[str]:
    high = meta.get("max")
    if high is not None and count > high:
        return [f"{where}: {count} {what}; the model allows at most {high}"]
    return []


def _range(where: str, number: float, meta: Mapping[str, Any]) -> list[str]:
    low, high = meta.get("min"), meta.get("max")
    if high is not None and number > high:
        return [f"{where}: {number} is over the model's maximum {high}"]
    if low is not None and number < low:
        return [f"{where}: {number} is under the model's minimum {low}"]
    return []


def _string(shape: Shape, value: str, where: str) -> list[str]:
    meta = shape.metadata
    found: list[str] = []
    high = meta.get("max")
    if high is not None and utf16_length(value) > high:
        found.append(f"{where}: {utf16_length(value)} characters; the model allows {high}")
    pattern = meta.get("pattern")
    if pattern is not None and not _pattern(pattern).fullmatch(value):
        found.append(f"{where}: does not match the model's pattern {pattern} ({shape.name})")
    enum = shape.enum  # type: ignore[attr-defined]
    if enum and value not in enum:
        found.append(f"{where}: {value!r} is not one of {', '.join(enum)}")
    return found

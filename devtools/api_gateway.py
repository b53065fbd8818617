"""The event API Gateway (REST, Lambda proxy integration) hands the pixel function.

Tests and the benchmark call the Chalice app exactly as Lambda does, with this event. It is
shared tooling rather than a test helper because `make bench` uses it (bench/hits.py,
bench/transport.py), and the bench never imports tests/ (an import-linter contract).
Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs


def pixel_event(
    query: str, headers: Mapping[str, str] | None, path: str = "/events"
) -> dict[str, Any]:
    """GET `path` (/events unless said) with this raw query string; API Gateway decodes the
    parameters."""
    params = parse_qs(query, keep_blank_values=True) or None
    return {
        "resource": path,
        "path": path,
        "httpMethod": "GET",
        "headers": None if headers is None else dict(headers),
        "multiValueHeaders": None
        if headers is None
        else {name: [value] for name, value in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in params.items()} if params else None,
        "multiValueQueryStringParameters": params,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": "GET",
            "path": "/api" + path,
            "stage": "api",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "203.0.113.7"},
        },
        "body": None,
        "isBase64Encoded": False,
    }


def beacon_event(
    body: bytes | None, headers: Mapping[str, str] | None, base64_encoded: bool = True
) -> dict[str, Any]:
    """POST /events with this body. API Gateway (binary media types `*/*`) hands a body to
    Lambda base64-encoded; `base64_encoded=False` is the other shape, a text body."""
    event = pixel_event("", headers)
    event["httpMethod"] = event["requestContext"]["httpMethod"] = "POST"
    if body is None:
        event["body"] = None
    elif base64_encoded:
        event["body"] = base64.b64encode(body).decode("ascii")
        event["isBase64Encoded"] = True
    else:
        event["body"] = body.decode("utf-8")
    return event

"""What the strict proxy's tests share: a client pointed at it, and a call it must refuse."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from devtools.standins.moto_proxy import StrictMotoProxy


def client(proxy: StrictMotoProxy, service: str) -> Any:
    """A boto3 client for `service` that reaches moto through `proxy`, one attempt a call."""
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=proxy.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )


def refused(call: Any, **params: Any) -> str:
    """The error of a call the proxy must answer 400, as AWS would."""
    with pytest.raises(ClientError) as raised:
        call(**params)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return str(raised.value)

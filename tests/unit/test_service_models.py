"""AWS's rules for a request member, read from botocore's own models."""

from __future__ import annotations

import pytest

from chalicelib.env import ConfigError, Reader
from chalicelib.service_models import model_rule


def test_model_rules_come_from_botocore_and_name_their_shape() -> None:
    rule = model_rule("customer-profiles", "BatchPutProfileObject", "DomainName")
    assert (rule.min_length, rule.max_length) == (1, 64)
    assert rule.pattern is not None
    assert rule.problem("domain-1_x") is None
    assert rule.problem("has space") == (
        "must match ^[a-zA-Z0-9_-]+$ (botocore's customer-profiles model, shape name)"
    )
    assert rule.problem("s" * 65) == (
        "must be 1-64 characters (botocore's customer-profiles model, shape name)"
    )


def test_a_list_member_is_stepped_into_without_naming_it() -> None:
    rule = model_rule("customer-profiles", "BatchPutProfileObject", "Items", "Id")
    assert (rule.min_length, rule.max_length) == (1, 64)
    assert rule.problem("0") is None
    assert rule.problem("a b") is not None


def test_a_value_the_model_refuses_fails_naming_the_variable() -> None:
    rule = model_rule("customer-profiles", "BatchPutProfileObject", "DomainName")
    with pytest.raises(ConfigError, match="PROFILES_DOMAIN: must match"):
        Reader({"PROFILES_DOMAIN": "a domain"}).modelled("PROFILES_DOMAIN", rule)
    assert Reader({}).modelled("PROFILES_DOMAIN", rule, default="pixel-relay") == "pixel-relay"

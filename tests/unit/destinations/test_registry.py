"""Which destinations exist: found by listing the package, only the configured imported."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import chalicelib.destinations
from chalicelib.destinations import registry
from chalicelib.env import ConfigError
from chalicelib.service_models import model_rule
from devtools.queue_spec import stage_environment


def test_every_module_and_package_but_the_interface_is_a_destination_by_its_name() -> None:
    folder = Path(chalicelib.destinations.__path__[0])
    on_disk = {
        path.stem.replace("_", "-")
        for path in folder.iterdir()
        if (path.suffix == ".py" or (path / "__init__.py").exists())
        and not path.name.startswith("_")
        and path.stem not in ("base", "registry")
    }
    assert set(registry.known()) == on_disk
    assert list(registry.known()) == sorted(on_disk)
    assert "customer-profiles" in on_disk  # a package counts, named with - for _


@pytest.mark.parametrize("name", registry.known())
def test_every_shape_a_destination_declares_is_checked_by_its_parse(name: str) -> None:
    """Each destination declares its resource settings' shapes in its own `variables`
    (no central table names them); its parse refuses a value each declared shape refuses,
    naming the variable: over the maximum length, or outside the pattern."""
    plugin = registry.plugin(name)
    environ = stage_environment("dev")
    for setting in plugin.variables:
        for path, prefix in (
            (setting.model, ""),
            (setting.name_model, ""),
            (setting.arn_model, "arn:"),
        ):
            if path is None:
                continue
            rule = model_rule(*path)
            assert rule.max_length or rule.pattern  # a shape that constrains something
            too_long = (rule.max_length or 0) + 1 - len(prefix)
            refused = [prefix + "a" * too_long] if rule.max_length else []
            if rule.pattern is not None:
                refused.append(prefix + "a b")
            for value in refused:
                assert rule.problem(value) is not None
                with pytest.raises(ConfigError) as caught:
                    plugin.parse({**environ, setting.variable: value})
                assert caught.value.variable == setting.variable


def test_destinations_names_known_ones_each_once_or_fails_naming_the_variable() -> None:
    assert registry.parse_names("pinpoint, customer-profiles,pinpoint") == (
        "pinpoint",
        "customer-profiles",
    )
    with pytest.raises(ConfigError, match="DESTINATIONS: unknown kafka; known: "):
        registry.parse_names("kafka")
    with pytest.raises(ConfigError, match="DESTINATIONS: name at least one of"):
        registry.parse_names(" , ")


def test_a_stages_destinations_come_in_the_registrys_order() -> None:
    assert registry.configured_names({"DESTINATIONS": "pinpoint,customer-profiles"}) == (
        "customer-profiles",
        "pinpoint",
    )
    assert registry.configured_names({}) == (registry.DEFAULT_DESTINATIONS,)


def test_knowing_the_names_imports_no_destination(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in registry.known():
        monkeypatch.delitem(sys.modules, registry.module_of(name), raising=False)
    registry.parse_names(",".join(registry.known()))
    assert not [name for name in registry.known() if registry.module_of(name) in sys.modules]


def test_an_unknown_name_is_no_plugin() -> None:
    with pytest.raises(KeyError, match="no destination named 'kafka'"):
        registry.plugin("kafka")

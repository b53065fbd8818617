"""Settings that deploy but open a door are named on every `make deploy` and `make package`
(both run `check_stage` first)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.deploy import package, stage
from devtools.deploy.preflight import check_stage

STAGE = "dev"


def set_variable(project: Path, name: str, value: str) -> None:
    path = project / ".chalice" / "config.json"
    config = json.loads(path.read_text())
    config["stages"][STAGE]["environment_variables"][name] = value
    path.write_text(json.dumps(config))


def test_anonymous_user_ids_are_named_in_a_warning(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check_stage(STAGE, project)
    assert "ALLOW_ANONYMOUS_USER_ID" not in capsys.readouterr().err
    set_variable(project, "ALLOW_ANONYMOUS_USER_ID", "true")
    check_stage(STAGE, project)  # a warning, not a refusal
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: stage dev: ALLOW_ANONYMOUS_USER_ID=true lets any page")


WARNING = "warning: stage dev: ALLOW_ANONYMOUS_USER_ID=true"


def test_make_deploy_prints_it_before_anything_else(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_variable(project, "ALLOW_ANONYMOUS_USER_ID", "true")
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)  # stop right after the stage check
    with pytest.raises(SystemExit, match="no AWS region"):
        stage.main(["deploy", "--stage", STAGE, "--project-dir", str(project)])
    assert capsys.readouterr().err.startswith(WARNING)


def test_make_package_prints_it_too(
    project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_variable(project, "ALLOW_ANONYMOUS_USER_ID", "true")
    monkeypatch.setattr(package, "run", lambda *args, **kwargs: 1)  # no chalice package
    with pytest.raises(SystemExit, match="chalice package failed"):
        package.package(STAGE, tmp_path / "out", project)
    assert capsys.readouterr().err.startswith(WARNING)

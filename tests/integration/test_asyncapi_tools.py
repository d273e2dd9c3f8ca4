"""The exported asyncapi.yaml as an integrator's tools read it: the official AsyncAPI parser
(`@asyncapi/parser` 3.x) finds no error, and Modelina generates a usable model from it.

The tools are npm packages pinned in deploy/asyncapi/package-lock.json (`make install-test`
installs them); deploy/asyncapi/check.mjs runs both. Needs Node, not Kafka or PostgreSQL.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from domains import Registry
from ioc.cli import app

TOOLS = Path(__file__).resolve().parents[2] / "deploy" / "asyncapi"
INSTALL = "make install-test (npm ci in deploy/asyncapi)"


def run_tools(asyncapi: Path, out: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not on PATH: install Node.js 20, then {INSTALL}", pytrace=False)
    for package in ("@asyncapi/parser", "@asyncapi/modelina"):
        if not (TOOLS / "node_modules" / package / "package.json").exists():
            pytest.fail(f"{package} is not installed: run {INSTALL}", pytrace=False)
    done = subprocess.run(
        [node, str(TOOLS / "check.mjs"), str(asyncapi), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, (done.returncode, done.stderr)
    return done, json.loads(lines[-1])


@pytest.fixture(scope="module")
def checked(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], dict, Path]:
    contracts = tmp_path_factory.mktemp("contracts")
    result = CliRunner().invoke(app, ["schemas", "export", str(contracts)])
    assert result.exit_code == 0, result.output
    models = tmp_path_factory.mktemp("models")
    done, summary = run_tools(contracts / "asyncapi.yaml", models)
    return done, summary, models


def test_the_official_parser_finds_no_error(checked: tuple) -> None:
    done, summary, _ = checked
    assert summary["errors"] == 0, done.stdout
    assert done.returncode == 0, (done.stdout, done.stderr)


def test_modelina_generates_a_model_per_event_type_with_its_fields(checked: tuple) -> None:
    _, summary, models = checked
    registry = Registry()
    assert {t.model.__name__ for t in registry} <= set(summary["models"])
    assert {"GeoPoint", "ZoneId"} <= set(summary["models"])
    cases = (models / "DiseaseCaseReport.py").read_text()
    for field in ("entity_id", "zone_id", "location", "disease", "new_cases", "hospitalised"):
        assert f"self._{field}" in cases, field
    zones = (models / "ZoneId.py").read_text()
    assert "class ZoneId(Enum)" in zones


def test_a_broken_reference_is_an_error_the_check_reports(tmp_path: Path) -> None:
    """The check itself works: the issue's invalid-ref (a pydantic $defs ref left in place)."""
    contracts = tmp_path / "contracts"
    result = CliRunner().invoke(app, ["schemas", "export", str(contracts)])
    assert result.exit_code == 0, result.output
    path = contracts / "asyncapi.yaml"
    text = path.read_text()
    assert "#/components/schemas/GeoPoint" in text
    path.write_text(text.replace("#/components/schemas/GeoPoint", "#/$defs/GeoPoint", 1))
    done, summary = run_tools(path, tmp_path / "models")
    assert summary["errors"] >= 1 and done.returncode == 1
    assert "#/$defs/GeoPoint" in done.stdout

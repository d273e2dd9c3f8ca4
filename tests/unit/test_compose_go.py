"""docker-compose.yml loads with compose-go, the loader docker compose itself uses (no engine
runs here), and refuses to load without its passwords.

deploy/compose/validate/ is a small Go program on compose-go v2.16.2 (the newest whose go
directive this machine's Go 1.26 satisfies), built here with GOTOOLCHAIN=local so that the go
command never fetches another toolchain. It loads the file with the variables of this test only
(as `docker compose config` would with that shell) and prints each service and its profiles.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "deploy" / "compose" / "validate"
PASSWORDS = (
    "POSTGRES_PASSWORD",
    "GF_SECURITY_ADMIN_PASSWORD",
    "IOC_DB__OWNER_PASSWORD",
    "IOC_DB__INGEST_PASSWORD",
    "IOC_DB__GRAFANA_PASSWORD",
    "IOC_DB__NOTIFIER_PASSWORD",
    "IOC_DB__API_PASSWORD",
)
SERVICES = {"kafka", "timescaledb", "migrate", "topics", "worker", "notifier", "api", "grafana"}


@pytest.fixture(scope="module")
def validator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail("the go command is not on PATH (Go 1.26: apt-get install golang-1.26 or "
                    "/usr/local/go/bin)", pytrace=False)  # fmt: skip
    assert "github.com/compose-spec/compose-go/v2 v2.16.2" in (VALIDATOR / "go.mod").read_text()
    binary = tmp_path_factory.mktemp("compose-go") / "validate"
    env = os.environ | {"GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly -buildvcs=false"}
    built = subprocess.run(
        [go, "build", "-o", str(binary), "."], cwd=VALIDATOR, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, f"go build failed:\n{built.stderr[-3000:]}"
    return binary


def load(binary: Path, variables: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    return subprocess.run(
        [str(binary), "-f", str(ROOT / "docker-compose.yml"), *args], env=env | variables,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def services(out: str) -> dict[str, tuple[str, bool]]:
    found = {}
    for line in out.splitlines():
        _, name, profiles, enabled = line.split()
        found[name] = (profiles.removeprefix("profiles="), enabled == "enabled=true")
    return found


def every_password() -> dict[str, str]:
    return {var: f"test-{var.lower()}-value" for var in PASSWORDS}


def test_compose_loads_with_every_password_set(validator: Path) -> None:
    done = load(validator, every_password())
    assert done.returncode == 0, done.stderr
    found = services(done.stdout)
    assert found == {name: ("", True) for name in SERVICES} | {"simulator": ("demo", False)}

    demo = load(validator, every_password(), "-profiles", "demo")
    assert demo.returncode == 0, demo.stderr
    assert services(demo.stdout)["simulator"] == ("demo", True)


@pytest.mark.parametrize("missing", PASSWORDS)
def test_compose_refuses_to_load_without_a_password_and_names_it(
    validator: Path, missing: str
) -> None:
    variables = every_password()
    del variables[missing]
    done = load(validator, variables)
    assert done.returncode != 0
    assert f"required variable {missing} is missing a value" in done.stderr
    others = set(PASSWORDS) - {missing}
    assert not any(f"variable {var} " in done.stderr for var in others), done.stderr

    empty = load(validator, every_password() | {missing: ""})  # empty is not a password either
    assert empty.returncode != 0 and missing in empty.stderr

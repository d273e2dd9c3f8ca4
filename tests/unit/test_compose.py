"""docker-compose.yml stays in step with Settings, the CLI and deploy/ (no engine runs here).

What is checked: the file parses; every IOC_* variable it sets is a real setting with a valid
value; every `ioc` sub-command it runs exists; the mounts it names exist in the repository;
every long-running service has a healthcheck; Kafka's image is the release `ioc dev up` runs;
the image holds every package; the notifier gets every secret its paging file names, by name
only, and starts with what the file gives it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.main import get_command

from ioc.cli import app
from notifier.service import build_context
from paging.load import PagingError, check_file, load_paging
from sinks.config import ROLES
from streams.settings import DevSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def ioc_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in compose["services"].items()
        if svc.get("image", "").startswith("ioc-platform") or "build" in svc
    }


SECRETS = "IOC_PAGING__SECRETS__"
#: settings passed through from the shell or .env by name only: secrets
PASSED_THROUGH = (SECRETS, "IOC_API__TOKEN_KEY", "IOC_API__LINK_KEY")


def resolve_default(value: str) -> str:
    """${NAME:-default} -> default, as compose does when NAME is unset; ${NAME:?message} (a
    value the operator must set) -> a stand-in, as the operator's shell would set it."""
    value = re.sub(r"\$\{([A-Z0-9_]+):\?[^}]*\}", r"set-by-operator-\1", str(value))
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


REQUIRED = re.compile(r"^\$\{([A-Z0-9_]+):\?[^}]+\}$")


def placeholder(var: str) -> str:
    """A value for a passed-through secret (an apprise URL), as an operator's shell would set."""
    return f"json://hooks.example.invalid/{var.removeprefix(SECRETS).lower()}"


def test_every_ioc_variable_is_a_valid_setting(
    compose: dict[str, Any], clean_env: pytest.MonkeyPatch
) -> None:
    services = ioc_services(compose)
    assert {"worker", "notifier", "api", "simulator", "migrate"} <= set(services)
    for name, svc in services.items():
        env = svc["environment"]
        assert env, f"service {name} has no environment"
        for var, value in env.items():
            assert var.startswith("IOC_"), f"{name}: {var} is not an IOC_ setting"
            if value is None:  # passed through from the shell: only secrets are
                assert var.startswith(PASSED_THROUGH), f"{name}: {var} has no value"
                value = placeholder(var)
            clean_env.setenv(var, resolve_default(value))
        settings = load_settings()  # raises SettingsError naming any unknown or bad variable
        assert settings.db.flavour == "timescale"
        assert settings.kafka.bootstrap == "kafka:9092"
        for var in env:
            clean_env.delenv(var)


def test_every_password_must_be_set_and_each_service_gets_only_its_own(
    compose: dict[str, Any],
) -> None:
    """No password has a default: each is `${ITS_OWN_NAME:?message}`, so compose refuses to start
    without it. The database gets every role's (its initdb creates the roles); a service gets the
    passwords of the roles it connects as and no other."""
    passwords = {
        service: {var for var in svc.get("environment", {}) if var.endswith("PASSWORD")}
        for service, svc in compose["services"].items()
    }
    for service, svc in compose["services"].items():
        for var in passwords[service]:
            found = REQUIRED.match(str(svc["environment"][var]))
            assert found and found.group(1) == var, f"{service}: {var} is not ${{{var}:?...}}"
    roles = {f"IOC_DB__{role.upper()}_PASSWORD" for role in ROLES}
    assert passwords == {
        "kafka": set(),
        "timescaledb": roles | {"POSTGRES_PASSWORD"},
        "migrate": {"IOC_DB__OWNER_PASSWORD"},
        "topics": set(),
        "worker": {"IOC_DB__INGEST_PASSWORD", "IOC_DB__OWNER_PASSWORD"},  # owner: maintenance
        "notifier": {"IOC_DB__NOTIFIER_PASSWORD"},
        "api": {"IOC_DB__API_PASSWORD"},
        "simulator": set(),
        "grafana": {"IOC_DB__GRAFANA_PASSWORD", "GF_SECURITY_ADMIN_PASSWORD"},
    }
    initdb = (ROOT / "deploy/compose/initdb/10-roles.sh").read_text()
    for role in ROLES:
        assert f"CREATE ROLE ioc_{role} LOGIN PASSWORD :'{role}_pw'" in initdb
        assert f'{role}_pw="$IOC_DB__{role.upper()}_PASSWORD"' in initdb


def resolve(command: list[str]) -> tuple[Any, list[str], list[str]]:
    """Walk `ioc <command>` down the CLI's groups: (the command it runs, its path, its args)."""
    cmd, path, rest = get_command(app), ["ioc"], list(command)
    while hasattr(cmd, "list_commands"):  # a group: the next word must name one of its commands
        where = " ".join(path)
        assert rest and not rest[0].startswith("-"), f"`{where}` is a group, not a command"
        sub = cmd.get_command(cmd.make_context(where, [], resilient_parsing=True), rest[0])
        assert sub is not None, f"`{where}` has no command {rest[0]!r}"
        cmd, path, rest = sub, [*path, rest[0]], rest[1:]
    return cmd, path, rest


def test_every_ioc_command_in_compose_exists(compose: dict[str, Any]) -> None:
    """Each service's command names a command (not a group) of the CLI, and its options and
    arguments parse: a renamed command or option fails here, not in a container."""
    services = ioc_services(compose)
    for name, svc in services.items():
        try:
            cmd, path, args = resolve(svc["command"])
            cmd.make_context(" ".join(path), args)  # a usage error on what does not parse
        except Exception as exc:  # the assertion or click's usage error, named by service
            pytest.fail(f"service {name}: `ioc {' '.join(svc['command'])}`: {exc}")
    assert {" ".join(resolve(svc["command"])[1]) for svc in services.values()} >= {
        "ioc worker", "ioc notifier", "ioc db migrate", "ioc topics create", "ioc simulate",
    }  # fmt: skip


def test_mounted_paths_exist(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"service {name} mounts missing {source}"
    assert (ROOT / "deploy" / "Dockerfile").is_file()


def test_long_running_services_have_healthchecks(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if svc.get("restart") == "no" or svc.get("profiles"):
            continue
        assert "healthcheck" in svc, f"service {name} has no healthcheck"


def test_the_image_holds_every_package() -> None:
    """The Dockerfile copies every package pyproject installs (`ioc` imports them all)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, flags=re.MULTILINE))
    assert packages - copied == set(), "deploy/Dockerfile does not copy these packages"


def mounted_file(svc: dict[str, Any], target: str) -> Path:
    """The repository file a service mounts at `target`."""
    for volume in svc.get("volumes", []):
        source, where, *_ = volume.split(":")
        if where == target:
            return ROOT / source
    raise AssertionError(f"nothing is mounted at {target}")


def test_the_notifier_gets_its_secrets_by_name_and_starts_with_them(
    compose: dict[str, Any], clean_env: pytest.MonkeyPatch
) -> None:
    """Every secret of the paging file it mounts is passed through by name (no value is in the
    file); without them the notifier refuses to start naming each variable; with them (as a
    shell would set them) its start-up check passes."""
    svc = compose["services"]["notifier"]
    env = svc["environment"]
    paging = mounted_file(svc, env["IOC_PAGING__FILE"])
    needed = {f"{SECRETS}{name.upper()}" for name in check_file(paging).secret_names()}
    given = {var for var in env if var.startswith(SECRETS)}
    assert given == needed
    assert all(env[var] is None for var in given), "a secret's value is in docker-compose.yml"
    for var, value in env.items():
        if value is not None:
            clean_env.setenv(var, resolve_default(value))
    clean_env.setenv("IOC_PAGING__FILE", str(paging))  # the mount's source, outside a container
    with pytest.raises(PagingError) as refused:
        load_paging(load_settings().paging)
    problems = refused.value.problems
    assert {v for p in problems for v in re.findall(rf"\(({SECRETS}\w+)\)", p)} == needed
    for var in needed:
        clean_env.setenv(var, placeholder(var))
    context = build_context(load_settings())
    assert context.config.secret_names() == {v.removeprefix(SECRETS).lower() for v in needed}
    assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    check = svc["healthcheck"]["test"]
    compile(check[-1], "notifier healthcheck", "exec")  # the probe it runs is valid Python


def test_kafka_release_matches_the_local_runtime(compose: dict[str, Any]) -> None:
    image = compose["services"]["kafka"]["image"]
    assert image == f"apache/kafka:{DevSettings().kafka_version}"
    assert compose["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_grafana_datasource_uid_is_fixed() -> None:
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/ioc.yaml").read_text()
    )["datasources"][0]
    assert datasource["uid"] == "ioc-timescale"
    assert datasource["jsonData"]["timescaledb"] is True


def test_the_api_serves_on_its_port_with_its_keys_passed_through(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["command"] == ["api", "serve"]
    env = api["environment"]
    assert env["IOC_API__HOST"] == "0.0.0.0" and f"{env['IOC_API__PORT']}:" in api["ports"][0]
    assert env["IOC_API__TOKEN_KEY"] is None and env["IOC_API__LINK_KEY"] is None
    notifier = compose["services"]["notifier"]["environment"]
    assert "IOC_API__LINK_KEY" in notifier and "IOC_API__PUBLIC_URL" in notifier

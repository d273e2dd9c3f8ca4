"""Settings validation and CLI errors: a bad value names its environment variable and exits 2."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ioc.cli import app
from streams.settings import SettingsError, load_settings

runner = CliRunner()


def test_defaults_point_at_the_local_runtime(clean_env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.kafka.bootstrap == "127.0.0.1:19092"
    assert settings.db.port == 55432
    assert settings.db.flavour == "postgres"


def test_nested_environment_variables_are_read(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("IOC_KAFKA__BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
    clean_env.setenv("IOC_DB__PORT", "6543")
    settings = load_settings()
    assert settings.kafka.bootstrap == "kafka-1:9092,kafka-2:9092"
    assert settings.db.port == 6543


def test_settings_are_frozen(clean_env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    with pytest.raises(Exception, match="frozen"):
        settings.db.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("IOC_DB__PORT", "not-a-port"),
        ("IOC_DB__PORT", "70000"),
        ("IOC_KAFKA__BOOTSTRAP", "no-port-here"),
        ("IOC_KAFKA__PARTITIONS", "0"),
        ("IOC_DB__FLAVOUR", "oracle"),
        ("IOC_LOG_LEVEL", "LOUD"),
    ],
)
def test_invalid_value_names_the_variable(
    clean_env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert any(problem.startswith(f"{name}:") for problem in caught.value.problems)

    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 2
    assert name in result.output


def test_unknown_nested_setting_is_an_error(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("IOC_DB__PASWORD", "typo")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 2
    assert "IOC_DB__PASWORD" in result.output
    assert "unknown setting" in result.output


def test_config_show_masks_secrets(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("IOC_DB__OWNER_PASSWORD", "hunter2-very-secret")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "hunter2-very-secret" not in result.output
    assert "IOC_DB__OWNER_PASSWORD=**********" in result.output
    assert "IOC_KAFKA__BOOTSTRAP=127.0.0.1:19092" in result.output


def test_config_show_json(clean_env: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    assert '"bootstrap": "127.0.0.1:19092"' in result.output


def test_bad_cli_option_exits_2(clean_env: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["demo", "--duration", "1"])
    assert result.exit_code == 2
    assert "--duration" in result.output


def test_unknown_log_component_exits_2(clean_env: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["dev", "logs", "zookeeper"])
    assert result.exit_code == 2
    assert "zookeeper" in result.output


def test_a_kraft_cluster_id_never_starts_with_a_dash() -> None:
    from localdev.runtime import cluster_uuid

    ids = [cluster_uuid() for _ in range(3000)]  # about 47 would start with "-" by chance
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)

"""Secure mode's settings and ACL plan (no broker): what each principal may do on which topic."""

from __future__ import annotations

import pytest

from localdev.kafka_secure import OPERATOR, SIMULATOR, WORKER, acl_plan, producer_principal
from streams.kafka_auth import client_options
from streams.settings import SettingsError, load_settings


def test_sasl_ssl_without_a_principal_is_refused_naming_the_variables(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("IOC_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(SettingsError, match="IOC_KAFKA__USERNAME and IOC_KAFKA__PASSWORD"):
        load_settings()


def test_client_options_carry_the_principal_only_in_secure_mode(
    clean_env: pytest.MonkeyPatch,
) -> None:
    assert client_options(load_settings().kafka) == {"bootstrap_servers": "127.0.0.1:19092"}
    clean_env.setenv("IOC_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    clean_env.setenv("IOC_KAFKA__USERNAME", "ioc-worker")
    clean_env.setenv("IOC_KAFKA__PASSWORD", "s3cret")
    settings = load_settings()
    options = client_options(settings.kafka)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "ioc-worker"
    assert options["sasl_plain_password"] == "s3cret"
    assert options["ssl_context"].check_hostname is True
    assert "s3cret" not in repr(settings)


def grants(user: str, operation: str, topic: str) -> bool:
    plan = acl_plan(load_settings())
    return any(
        acl.user == user
        and operation in acl.operations
        and acl.resource == "TOPIC"
        and (acl.name == topic if acl.pattern == "LITERAL" else topic.startswith(acl.name))
        for acl in plan
    )


def test_each_domain_system_writes_only_its_own_topic(clean_env: pytest.MonkeyPatch) -> None:
    domains = ["health", "security", "transport", "environment"]
    for owner in domains:
        for domain in domains:
            topic = f"city.{domain}.events"
            assert grants(producer_principal(owner), "Write", topic) == (owner == domain)
            assert not grants(producer_principal(owner), "Read", topic)


def test_only_the_workers_read_health_and_security(clean_env: pytest.MonkeyPatch) -> None:
    users = {acl.user for acl in acl_plan(load_settings())}
    for domain in ("health", "security"):
        readers = {u for u in users if grants(u, "Read", f"city.{domain}.events")}
        assert readers == {WORKER}
    assert not grants(WORKER, "Write", "city.health.events")
    assert grants(OPERATOR, "Write", "city.health.events")  # dlq replay
    assert grants(SIMULATOR, "Write", "city.health.events")
    assert grants(WORKER, "Create", "ioc-pipeline-__assignor-__leader")

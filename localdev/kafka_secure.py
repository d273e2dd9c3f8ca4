"""Kafka's secure mode for the local runtime (`ioc dev up --secure`): SASL/SCRAM-SHA-512 over TLS
on the client listener, one principal per system, ACLs under KRaft's StandardAuthorizer.

    .local/kafka/secure/tls/        ca.p12 + ca.pem (the local CA), broker.p12 (its key and chain)
    .local/kafka/secure/data/       the secure cluster's log dirs (the plaintext one keeps data/)
    .local/kafka/secure/credentials.json   every principal's SCRAM password (mode 0600)
    .local/kafka/secure/<principal>.env    IOC_KAFKA__* lines for a process running as it

The certificates come from the JDK's keytool. The admin user is created when the storage is
formatted (`StorageTool format --add-scram`); the other users by `kafka.admin.ConfigCommand`
from the kafka_2.13 jar; the ACLs (`acl_plan`, listed in the README) through the admin API.
The KRaft controller listener stays PLAINTEXT on loopback: SCRAM cannot authenticate it
(KAFKA-15513), so the broker reaches the controller as User:ANONYMOUS, which is a super user
there; the client listener never admits ANONYMOUS.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog
from pydantic import SecretStr

from domains import Registry
from streams.dlq import dlq_topic
from streams.kafka_io import connect_options
from streams.relay import incidents_topic
from streams.settings import KafkaSettings, Settings

log = structlog.get_logger(__name__)

ADMIN = "admin"
WORKER = "ioc-worker"
OPERATOR = "ioc-operator"
SIMULATOR = "ioc-simulator"
MECHANISM = "SCRAM-SHA-512"
CERT_DAYS = 825


def producer_principal(domain: str) -> str:
    return f"ioc-producer-{domain}"


def principals(registry: Registry) -> list[str]:
    """Every SCRAM user of the secure runtime, the admin first."""
    domains = [producer_principal(d) for d in registry.domains()]
    return [ADMIN, WORKER, OPERATOR, SIMULATOR, *domains]


# ---------------------------------------------------------------------------------------------
# The ACLs


@dataclass(frozen=True)
class Acl:
    """ALLOW `operations` on one resource pattern to User:`user`, from any host."""

    user: str
    operations: tuple[str, ...]
    resource: str  # TOPIC | GROUP | CLUSTER
    name: str
    pattern: str  # LITERAL | PREFIXED
    why: str


def acl_plan(settings: Settings) -> list[Acl]:
    """Every ACL the platform needs for `settings` (topic prefix, app id, client id, domains).

    Anything not listed is refused (allow.everyone.if.no.acl.found=false): nobody but the
    workers reads a domain topic, in particular the health and security topics."""
    kafka, app_id = settings.kafka, settings.stream.app_id
    registry = Registry(settings.domains.namespace, kafka.topic_prefix)
    domain_topics = registry.topics()
    dlq, incidents = dlq_topic(kafka.topic_prefix), incidents_topic(settings)
    acls: list[Acl] = []
    for domain, topic in domain_topics.items():
        acls.append(Acl(
            producer_principal(domain), ("Write", "Describe"), "TOPIC", topic, "LITERAL",
            f"the {domain} system publishes its events; it can write no other topic",
        ))  # fmt: skip
    for topic in domain_topics.values():
        acls += [
            Acl(WORKER, ("Read", "Describe"), "TOPIC", topic, "LITERAL",
                "the workers consume every domain topic (and read its end offsets for lag)"),
            Acl(SIMULATOR, ("Write", "Describe"), "TOPIC", topic, "LITERAL",
                "development only: the simulator plays every domain system"),
            Acl(OPERATOR, ("Write",), "TOPIC", topic, "LITERAL",
                "`ioc dlq replay` writes dead letters back to their domain topic"),
        ]  # fmt: skip
    acls += [
        Acl(WORKER, ("Write", "Describe"), "TOPIC", dlq, "LITERAL",
            "the workers dead-letter what they cannot store (idempotent producer: Write on a "
            "topic implies IdempotentWrite, KIP-679)"),
        Acl(WORKER, ("Write", "Describe"), "TOPIC", incidents, "LITERAL",
            "the workers' relay publishes incident transitions"),
        Acl(WORKER, ("Read",), "GROUP", app_id, "LITERAL",
            "the workers' consumer group (join, commit, fetch committed offsets for lag)"),
        Acl(WORKER, ("Create", "Describe", "Read", "Write", "DescribeConfigs"), "TOPIC",
            f"{app_id}-", "PREFIXED",
            "the topics Faust makes for itself (its assignor's leader topic, changelogs)"),
        Acl(OPERATOR, ("Create", "Describe", "DescribeConfigs", "Alter", "AlterConfigs"),
            "TOPIC", f"{kafka.topic_prefix}.", "PREFIXED",
            "topic administration: `ioc topics create`, partitions and configs (not Read, not "
            "Delete: deleting a topic is the admin's)"),
        Acl(OPERATOR, ("Read",), "TOPIC", dlq, "LITERAL",
            "`ioc dlq stats | show | replay` read the dead letters"),
        Acl(OPERATOR, ("Read",), "GROUP", f"{kafka.client_id}.dlq-replay.", "PREFIXED",
            "`ioc dlq replay` keeps its cursor per reason in a consumer group"),
    ]  # fmt: skip
    return acls


RESOURCE_TYPES = {"TOPIC": 2, "GROUP": 3, "CLUSTER": 4}
PATTERN_TYPES = {"LITERAL": 3, "PREFIXED": 4}
OPERATIONS = {
    "Read": 3, "Write": 4, "Create": 5, "Delete": 6, "Alter": 7, "Describe": 8,
    "ClusterAction": 9, "DescribeConfigs": 10, "AlterConfigs": 11, "IdempotentWrite": 12,
}  # fmt: skip
ALLOW = 3


async def apply_acls(admin: KafkaSettings, acls: Iterable[Acl]) -> int:
    """Create `acls` through the admin API (CreateAcls, API key 30) as the admin; adding an ACL
    that exists is a no-op on the broker. Returns how many bindings were sent."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import for_code
    from aiokafka.protocol.admin import CreateAclsRequest

    client = AIOKafkaAdminClient(**connect_options(admin))
    await client.start()
    sent = 0
    try:
        for acl in acls:
            for operation in acl.operations:
                request = CreateAclsRequest(
                    RESOURCE_TYPES[acl.resource], acl.name, PATTERN_TYPES[acl.pattern],
                    f"User:{acl.user}", "*", OPERATIONS[operation], ALLOW,
                )  # fmt: skip
                response = await client._send_request(request)
                for code, message in response.creation_responses:
                    if code:
                        raise for_code(code)(f"creating ACL {acl} {operation}: {message}")
                sent += 1
    finally:
        await client.close()
    return sent


def acl_command_lines(acls: Iterable[Acl], bootstrap: str) -> list[str]:
    """The same ACLs as `kafka.admin.AclCommand` invocations, for a production cluster."""
    lines = []
    for acl in acls:
        ops = " ".join(f"--operation {op}" for op in acl.operations)
        resource = {"TOPIC": "--topic", "GROUP": "--group"}[acl.resource]
        lines.append(
            f"kafka-acls.sh --bootstrap-server {bootstrap} --command-config admin.properties "
            f"--add --allow-principal User:{acl.user} {ops} {resource} {acl.name} "
            f"--resource-pattern-type {acl.pattern.lower()}"
        )
    return lines


# ---------------------------------------------------------------------------------------------
# Files: certificates, credentials, the broker's settings


class SecureFiles:
    """What secure mode keeps under .local/kafka/secure/."""

    def __init__(self, kafka_home: Path) -> None:
        self.home = kafka_home / "secure"
        self.tls = self.home / "tls"
        self.data = self.home / "data"
        self.credentials_file = self.home / "credentials.json"
        self.ca_pem = self.tls / "ca.pem"
        self.ca_p12 = self.tls / "ca.p12"
        self.broker_p12 = self.tls / "broker.p12"
        self.admin_properties = self.home / "admin.properties"
        self.users_done = self.home / "users.done"

    # -- credentials --------------------------------------------------------------------------
    def passwords(self) -> dict[str, str]:
        try:
            return dict(json.loads(self.credentials_file.read_text()))
        except FileNotFoundError:
            return {}

    def ensure_passwords(self, names: Iterable[str]) -> dict[str, str]:
        """A random password for every principal that has none yet; kept with mode 0600."""
        known = self.passwords()
        missing = [n for n in names if n not in known]
        if missing:
            known |= {n: secrets.token_urlsafe(24) for n in missing}
            self.home.mkdir(parents=True, exist_ok=True)
            tmp = self.credentials_file.with_suffix(".tmp")
            tmp.touch(mode=0o600)
            tmp.write_text(json.dumps(known, indent=2))
            tmp.replace(self.credentials_file)
        return known

    def store_keystore_password(self) -> str:
        return self.ensure_passwords(["keystore"])["keystore"]

    def client_env(self, user: str, bootstrap: str) -> dict[str, str]:
        """The IOC_KAFKA__* variables of a process that connects as `user`."""
        return {
            "IOC_KAFKA__BOOTSTRAP": bootstrap,
            "IOC_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "IOC_KAFKA__SASL_MECHANISM": MECHANISM,
            "IOC_KAFKA__USERNAME": user,
            "IOC_KAFKA__PASSWORD": self.passwords()[user],
            "IOC_KAFKA__SSL_CAFILE": str(self.ca_pem),
        }

    def client_settings(self, base: KafkaSettings, user: str) -> KafkaSettings:
        return base.model_copy(
            update={
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": MECHANISM,
                "username": user,
                "password": SecretStr(self.passwords()[user]),
                "ssl_cafile": self.ca_pem,
            }
        )

    def write_env_files(self, bootstrap: str) -> list[Path]:
        written = []
        for user in self.passwords():
            if user == "keystore":
                continue
            path = self.home / f"{user}.env"
            path.touch(mode=0o600)
            lines = [f"{k}={v}" for k, v in self.client_env(user, bootstrap).items()]
            path.write_text("\n".join(lines) + "\n")
            written.append(path)
        return written

    def write_admin_properties(self) -> None:
        """The Java tools' client settings as the admin (ConfigCommand, AclCommand)."""
        password = self.passwords()[ADMIN]
        self.admin_properties.touch(mode=0o600)
        self.admin_properties.write_text(
            "security.protocol=SASL_SSL\n"
            f"sasl.mechanism={MECHANISM}\n"
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN}" password="{password}";\n'
            f"ssl.truststore.location={self.ca_pem}\n"
            "ssl.truststore.type=PEM\n"
        )

    # -- certificates -------------------------------------------------------------------------
    def make_certificates(self) -> bool:
        """A local CA and the broker's certificate (SAN localhost and 127.0.0.1), by keytool.
        Returns False when they exist."""
        if self.broker_p12.exists() and self.ca_pem.exists():
            return False
        self.tls.mkdir(parents=True, exist_ok=True)
        for stale in (self.ca_p12, self.ca_pem, self.broker_p12):
            stale.unlink(missing_ok=True)
        password = self.store_keystore_password()
        csr, signed = self.tls / "broker.csr", self.tls / "broker.pem"
        store = ["-storetype", "PKCS12", "-storepass", password]
        san = "SAN=dns:localhost,ip:127.0.0.1"
        steps = [
            ["-genkeypair", "-alias", "ca", "-keyalg", "RSA", "-keysize", "2048",
             "-dname", "CN=IOC local development CA", "-validity", str(CERT_DAYS),
             "-ext", "bc:c=ca:true", "-ext", "KU=keyCertSign,cRLSign",
             "-keystore", str(self.ca_p12), *store],
            ["-exportcert", "-rfc", "-alias", "ca", "-keystore", str(self.ca_p12), *store,
             "-file", str(self.ca_pem)],
            ["-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048",
             "-dname", "CN=localhost", "-validity", str(CERT_DAYS), "-ext", san,
             "-keystore", str(self.broker_p12), *store],
            ["-certreq", "-alias", "broker", "-keystore", str(self.broker_p12), *store,
             "-file", str(csr)],
            ["-gencert", "-rfc", "-alias", "ca", "-keystore", str(self.ca_p12), *store,
             "-infile", str(csr), "-outfile", str(signed), "-validity", str(CERT_DAYS),
             "-ext", san, "-ext", "KU=digitalSignature,keyEncipherment",
             "-ext", "EKU=serverAuth,clientAuth"],
            ["-importcert", "-noprompt", "-alias", "ca", "-file", str(self.ca_pem),
             "-keystore", str(self.broker_p12), *store],
            ["-importcert", "-noprompt", "-alias", "broker", "-file", str(signed),
             "-keystore", str(self.broker_p12), *store],
        ]  # fmt: skip
        for step in steps:
            done = subprocess.run(["keytool", *step], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise OSError(f"keytool {step[0]} failed: {done.stdout}{done.stderr}")
        csr.unlink()
        signed.unlink()
        for path in (self.ca_p12, self.broker_p12):
            os.chmod(path, 0o600)
        log.info("kafka.secure.certificates", ca=str(self.ca_pem), broker=str(self.broker_p12))
        return True

    def server_properties(self, port: int, controller_port: int) -> str:
        """The lines that replace the PLAINTEXT listener of server.properties.in."""
        admin = self.passwords()[ADMIN]
        keystore = self.passwords()["keystore"]
        return (
            f"listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}\n"
            f"advertised.listeners=SASL_SSL://127.0.0.1:{port}\n"
            "controller.listener.names=CONTROLLER\n"
            "inter.broker.listener.name=SASL_SSL\n"
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL\n"
            f"sasl.enabled.mechanisms={MECHANISM}\n"
            f"sasl.mechanism.inter.broker.protocol={MECHANISM}\n"
            f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN}" password="{admin}";\n'
            f"ssl.keystore.location={self.broker_p12}\n"
            "ssl.keystore.type=PKCS12\n"
            f"ssl.keystore.password={keystore}\n"
            f"ssl.key.password={keystore}\n"
            f"ssl.truststore.location={self.ca_pem}\n"
            "ssl.truststore.type=PEM\n"
            "ssl.client.auth=none\n"
            "ssl.enabled.protocols=TLSv1.3,TLSv1.2\n"
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n"
            "allow.everyone.if.no.acl.found=false\n"
            # The broker reaches the KRaft controller over PLAINTEXT on loopback as ANONYMOUS.
            f"super.users=User:{ADMIN};User:ANONYMOUS\n"
        )

    def admin_scram_argument(self) -> list[str]:
        password = self.passwords()[ADMIN]
        return ["--add-scram", f"{MECHANISM}=[name={ADMIN},password={password}]"]


def config_command_add_user(user: str, password: str) -> list[str]:
    """kafka.admin.ConfigCommand arguments that set `user`'s SCRAM credential (new or rotated)."""
    return [
        "--alter", "--add-config", f"{MECHANISM}=[iterations=8192,password={password}]",
        "--entity-type", "users", "--entity-name", user,
    ]  # fmt: skip


def wait_acls(admin: KafkaSettings, acls: list[Acl], timeout: float = 30.0) -> int:
    return asyncio.run(asyncio.wait_for(apply_acls(admin, acls), timeout))

"""The local runtime behind `ioc dev up | down | status | logs`.

A real Apache Kafka (KRaft, single node, jars from Maven Central) and a real PostgreSQL 15
(Debian's packages), both with all their state under `Settings.dev.state_dir` (`.local/`):

    .local/kafka/<version>/libs/   jars (cached; fetched once by Maven)
    .local/kafka/data/             the broker's log dirs (kept by `down`)
    .local/kafka/secure/           secure mode (`up --secure`): TLS, credentials, its own data/
    .local/kafka/mode              plaintext | secure: how the running broker was started
    .local/kafka/kafka.log         the broker's log;  .local/kafka/kafka.pid
    .local/pg/data/                the cluster (owned by the `postgres` OS user when run as root)
    .local/pg/run/                 its unix socket;   .local/pg/postgres.log

Both start in the background and outlive the command that started them; `down` stops them and
keeps their data. Nothing here falls back silently: a missing tool or a taken port raises
`RuntimeProblem` with what to do.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import pwd
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import structlog

from localdev.kafka_secure import (
    ADMIN,
    SecureFiles,
    acl_plan,
    config_command_add_user,
    principals,
    wait_acls,
)
from sinks.config import ROLES
from streams.kafka_io import Brokers, connect_options
from streams.net import port_is_free
from streams.pipeline import registry_for
from streams.settings import KafkaSettings, Settings

log = structlog.get_logger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEPLOY_DIR = PROJECT_ROOT / "deploy"


class RuntimeProblem(Exception):
    """Something stops the local runtime; the message says what and what to do."""


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    version: str
    address: str
    pid: int | None
    health: str  # "up", "down", "starting", "unhealthy: <why>"
    detail: str = ""

    @property
    def healthy(self) -> bool:
        return self.health == "up"


def state_dir(settings: Settings) -> Path:
    path = settings.dev.state_dir
    return path if path.is_absolute() else PROJECT_ROOT / path


def pid_alive(pid: int | None, needle: str) -> bool:
    """True if `pid` runs and its command line contains `needle` (guards against pid reuse)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return needle in cmdline


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def port_owner_hint(port: int) -> str:
    """Best effort: which process listens on `port` (from `ss`), for the error message."""
    if not shutil.which("ss"):
        return ""
    out = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return f" ({out.split('users:')[-1].strip()})" if "users:" in out else ""


def taken_port_error(port: int, what: str, setting: str) -> RuntimeProblem:
    return RuntimeProblem(
        f"port {port} for {what} is already taken by another process{port_owner_hint(port)}; "
        f"stop that process or choose a free port with {setting}"
    )


# ---------------------------------------------------------------------------------------------
# Kafka


class LocalKafka:
    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = state_dir(settings) / "kafka"
        self.version = settings.dev.kafka_version
        self.libs = self.home / self.version / "libs"
        self.config = self.home / "server.properties"
        self.pid_file = self.home / "kafka.pid"
        self.log_file = self.home / "kafka.log"
        self.mode_file = self.home / "mode"
        self.port = settings.kafka.first_port
        self.controller_port = settings.dev.kafka_controller_port
        self.secure_files = SecureFiles(self.home)
        self.secure = settings.dev.kafka_secure
        self.data = self.secure_files.data if self.secure else self.home / "data"

    @property
    def mode(self) -> str:
        return "secure" if self.secure else "plaintext"

    def running_mode(self) -> str:
        """How the running broker was started (its mode file), or this object's mode."""
        try:
            return self.mode_file.read_text().strip() or self.mode
        except FileNotFoundError:
            return self.mode

    def client(self, user: str = ADMIN) -> Brokers:
        """How a client reaches the running broker: a bare address in plaintext mode, the
        settings of `user` (the admin by default) in secure mode."""
        address = f"127.0.0.1:{self.port}"
        if self.running_mode() != "secure":
            return address
        base = self.settings.kafka.model_copy(update={"bootstrap": address})
        return self.secure_files.client_settings(base, user)

    # -- install ------------------------------------------------------------------------------
    def _pom_digest(self) -> str:
        pom = (DEPLOY_DIR / "kafka" / "pom.xml").read_bytes()
        return hashlib.sha256(pom + self.version.encode()).hexdigest()[:16]

    def installed(self) -> bool:
        stamp = self.libs / ".complete"
        return stamp.exists() and stamp.read_text().strip() == self._pom_digest()

    def install(self) -> bool:
        """Fetch the jars with Maven into .local (Maven's own cache makes re-runs fast)."""
        if self.installed():
            return False
        if not shutil.which("java"):
            raise RuntimeProblem(
                "java is not on PATH; install OpenJDK 17 (apt-get install openjdk-17-jre-headless)"
            )
        if not shutil.which("mvn"):
            raise RuntimeProblem("mvn is not on PATH; install Maven (apt-get install maven)")
        if self.libs.exists():
            shutil.rmtree(self.libs)
        self.libs.mkdir(parents=True)
        cmd = [
            "mvn", "-B", "-q",
            "-f", str(DEPLOY_DIR / "kafka" / "pom.xml"),
            "dependency:copy-dependencies",
            f"-Dkafka.version={self.version}",
            f"-DoutputDirectory={self.libs}",
        ]  # fmt: skip
        log.info("kafka.install", version=self.version, libs=str(self.libs))
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not any(self.libs.glob("kafka_2.13-*.jar")):
            raise RuntimeProblem(
                f"Maven could not fetch Kafka {self.version}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        (self.libs / ".complete").write_text(self._pom_digest())
        return True

    # -- configure and format -----------------------------------------------------------------
    def _java(self, main: str, *args: str) -> list[str]:
        return [
            "java",
            f"-Dlog4j.configuration=file:{DEPLOY_DIR / 'kafka' / 'log4j.properties'}",
            "-cp", f"{self.libs}/*",
            main, *args,
        ]  # fmt: skip

    def write_config(self) -> None:
        template = (DEPLOY_DIR / "kafka" / "server.properties.in").read_text()
        text = (
            template.replace("@BROKER_PORT@", str(self.port))
            .replace("@CONTROLLER_PORT@", str(self.controller_port))
            .replace("@LOG_DIRS@", str(self.data))
        )
        if self.secure:
            replaced = ("listeners=", "advertised.listeners=", "controller.listener.names=",
                        "inter.broker.listener.name=", "listener.security.protocol.map=")  # fmt: skip
            kept = [line for line in text.splitlines() if not line.startswith(replaced)]
            text = "\n".join(kept) + "\n# secure mode (localdev/kafka_secure.py)\n"
            text += self.secure_files.server_properties(self.port, self.controller_port)
        self.config.touch(mode=0o600)
        self.config.write_text(text)

    def prepare_secure(self) -> None:
        """Passwords for every principal, the certificates, the admin's client settings."""
        self.secure_files.ensure_passwords([*principals(registry_for(self.settings)), "keystore"])
        try:
            self.secure_files.make_certificates()
        except OSError as exc:
            raise RuntimeProblem(f"making the TLS certificates failed: {exc}") from None
        self.secure_files.write_admin_properties()

    def create_users(self) -> int:
        """Every principal but the admin (made at format time), by ConfigCommand; once per
        secure cluster (users.done). Returns how many were created."""
        files = self.secure_files
        if files.users_done.exists():
            return 0
        passwords = files.passwords()
        users = [u for u in principals(registry_for(self.settings)) if u != ADMIN]
        for user in users:
            cmd = self._java(
                "kafka.admin.ConfigCommand", "--bootstrap-server", f"127.0.0.1:{self.port}",
                "--command-config", str(files.admin_properties),
                *config_command_add_user(user, passwords[user]),
            )  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeProblem(
                    f"creating the SCRAM user {user} failed: {done.stdout[-1500:]}{done.stderr[-1500:]}"
                )
        files.users_done.write_text("\n".join(users) + "\n")
        return len(users)

    def grant(self, settings: Settings | None = None) -> int:
        """The ACLs of `settings` (topic prefix, app id; default: this runtime's)."""
        admin = self.client(ADMIN)
        assert isinstance(admin, KafkaSettings)
        return wait_acls(admin, acl_plan(settings or self.settings))

    def format_storage(self) -> bool:
        if (self.data / "meta.properties").exists():
            return False
        self.data.mkdir(parents=True, exist_ok=True)
        cluster_id = cluster_uuid()
        cmd = self._java(
            "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config),
            *(self.secure_files.admin_scram_argument() if self.secure else []),
        )  # fmt: skip
        self.secure_files.users_done.unlink(missing_ok=True)
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeProblem(
                f"formatting Kafka storage failed: {done.stdout[-1500:]}{done.stderr[-1500:]}"
            )
        return True

    # -- run ----------------------------------------------------------------------------------
    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid_alive(pid, "kafka.Kafka") else None

    def start(self) -> str:
        """Start the broker and wait until it answers a metadata request. Returns what happened."""
        if self.pid():
            if self.running_mode() != self.mode:
                raise RuntimeProblem(
                    f"Kafka (pid {self.pid()}) runs in {self.running_mode()} mode; stop it with "
                    f"`ioc dev down` before starting it in {self.mode} mode"
                )
            if self.ready(timeout=self.settings.dev.start_timeout_s):
                if self.secure:
                    self.grant()
                return f"already running ({self.mode})"
            raise RuntimeProblem(
                f"Kafka (pid {self.pid()}) runs but does not answer; see {self.log_file}"
            )
        for port, setting in (
            (self.port, "IOC_KAFKA__BOOTSTRAP=127.0.0.1:<port>"),
            (self.controller_port, "IOC_DEV__KAFKA_CONTROLLER_PORT"),
        ):
            if not port_is_free(port):
                raise taken_port_error(port, "Kafka", setting)
        self.install()
        if self.secure:
            self.prepare_secure()
        self.write_config()
        self.format_storage()
        self.mode_file.write_text(self.mode + "\n")
        cmd = [
            "java",
            "-Xms256m",
            f"-Xmx{self.settings.dev.kafka_heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.home}",
            *self._java("kafka.Kafka", str(self.config))[1:],
        ]
        with self.log_file.open("ab") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.home,
            )  # fmt: skip
        self.pid_file.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + self.settings.dev.start_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeProblem(
                    f"Kafka exited with code {proc.returncode} while starting; last lines of "
                    f"{self.log_file}:\n{tail(self.log_file, 15)}"
                )
            if self.ready(timeout=2.0):
                if not self.secure:
                    return "started"
                users = self.create_users()
                self.grant()
                self.secure_files.write_env_files(f"127.0.0.1:{self.port}")
                return f"started (secure: {users} users created, ACLs granted)"
            time.sleep(0.3)
        raise RuntimeProblem(
            f"Kafka did not answer within {self.settings.dev.start_timeout_s:.0f}s; see {self.log_file}"
        )

    def ready(self, timeout: float = 5.0) -> bool:
        """A real metadata request answers (not just an open port)."""
        return asyncio.run(kafka_metadata_ok(self.client(ADMIN), timeout))

    def stop(self, timeout: float = 60.0) -> str:
        pid = self.pid()
        if not pid:
            self.pid_file.unlink(missing_ok=True)
            return "not running"
        os.kill(pid, signal.SIGTERM)  # controlled shutdown: flushes logs, clean restart later
        if not wait_gone(pid, "kafka.Kafka", timeout):
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, "kafka.Kafka", 10)
        self.pid_file.unlink(missing_ok=True)
        return f"stopped ({self.running_mode()})"

    def status(self) -> ComponentStatus:
        pid = self.pid()
        address = f"127.0.0.1:{self.port}"
        if not pid:
            return ComponentStatus(
                self.name, f"Apache Kafka {self.version} (KRaft)", address, None, "down"
            )
        health = "up" if self.ready(timeout=3.0) else "unhealthy: no metadata answer"
        mode = self.running_mode()
        security = (
            f"SASL_SSL (SCRAM-SHA-512), credentials {self.secure_files.home}/*.env"
            if mode == "secure"
            else "PLAINTEXT"
        )
        data = self.secure_files.data if mode == "secure" else self.home / "data"
        return ComponentStatus(
            self.name, f"Apache Kafka {self.version} (KRaft)", address, pid, health,
            detail=f"{security}, controller 127.0.0.1:{self.controller_port}, data {data}",
        )  # fmt: skip


async def kafka_metadata_ok(bootstrap: Brokers, timeout: float) -> bool:
    from aiokafka import AIOKafkaClient
    from aiokafka.errors import KafkaError

    # aiokafka logs every refused connection at ERROR; while probing, a refusal is the answer.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    client = AIOKafkaClient(**connect_options(bootstrap), request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
        metadata = await asyncio.wait_for(client.fetch_all_metadata(), timeout)
        return bool(metadata.brokers())
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await client.close()


# ---------------------------------------------------------------------------------------------
# PostgreSQL


class LocalPostgres:
    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.link = state_dir(settings) / "pg"
        self.bin = settings.dev.pg_bin_dir
        self.port = settings.db.port
        self.as_root = os.geteuid() == 0
        self._place(self.link.resolve() if self.link.is_symlink() else self.link)

    def _place(self, home: Path) -> None:
        self.home = home
        self.data = home / "data"
        self.run_dir = home / "run"
        self.log_file = home / "postgres.log"
        self.tls = home / "tls"

    @property
    def ca_file(self) -> Path:
        """The local CA's certificate: IOC_DB__SSLROOTCERT for IOC_DB__SSLMODE=verify-full."""
        return self.tls / "ca.crt"

    def _relocate_if_unreachable(self) -> None:
        """Run as root, the cluster belongs to the `postgres` user, who must be able to reach it.
        A checkout under a private directory (mktemp -d, a 0700 home) is out of its reach: then
        the cluster lives in the postgres user's own home, keyed by this state dir, and
        .local/pg is a symlink to it (logged, and shown by `ioc dev status`)."""
        parent = self.link.parent
        parent.mkdir(parents=True, exist_ok=True)
        if not self.as_root or self._run("test", "-x", parent, check=False).returncode == 0:
            return
        home = Path(pwd.getpwnam(self.settings.dev.pg_os_user).pw_dir)
        key = hashlib.sha256(str(self.link.resolve()).encode()).hexdigest()[:12]
        target = home / "ioc-dev" / key
        target.mkdir(parents=True, exist_ok=True)
        self._own(target.parent, target)
        self.link.symlink_to(target, target_is_directory=True)
        log.warning(
            "postgres.data_outside_checkout",
            reason=f"user {self.settings.dev.pg_os_user} cannot reach {parent}",
            data=str(target),
        )
        self._place(target)

    # -- install ------------------------------------------------------------------------------
    def installed(self) -> bool:
        return (self.bin / "initdb").exists() and (self.bin / "pg_ctl").exists()

    def install(self) -> bool:
        if self.installed():
            return False
        script = DEPLOY_DIR / "local" / "install-postgres.sh"
        log.info("postgres.install", script=str(script))
        done = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
        if done.returncode != 0 or not self.installed():
            raise RuntimeProblem(
                f"installing PostgreSQL 15 failed ({script}):\n{done.stdout[-1500:]}{done.stderr[-1500:]}"
            )
        return True

    def _run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool as the `postgres` OS user when we are root (PG refuses root)."""
        cmd = [str(a) for a in args]
        if self.as_root:
            cmd = ["runuser", "-u", self.settings.dev.pg_os_user, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd="/")
        if check and done.returncode != 0:
            raise RuntimeProblem(
                f"{' '.join(cmd)} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}"
            )
        return done

    def _own(self, *paths: Path) -> None:
        if not self.as_root:
            return
        user = pwd.getpwnam(self.settings.dev.pg_os_user)
        for path in paths:
            os.chown(path, user.pw_uid, user.pw_gid)

    # -- configure ----------------------------------------------------------------------------
    def init_cluster(self) -> bool:
        if (self.data / "PG_VERSION").exists():
            return False
        if not self.link.exists() and not self.link.is_symlink():
            self._relocate_if_unreachable()
        self.home.mkdir(parents=True, exist_ok=True)
        for path in (self.data, self.run_dir):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o700)
        self._own(self.home, self.data, self.run_dir)
        self._run(
            self.bin / "initdb", "-D", self.data, "-U", "postgres", "-E", "UTF8",
            "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256",
        )  # fmt: skip
        return True

    def make_certificates(self) -> bool:
        """A local CA and a server certificate it signs (for localhost and 127.0.0.1), made once
        with openssl under <pg>/tls/: clients verify the server with sslmode=verify-full and
        sslrootcert=ca.crt. Returns True if they were made now."""
        server_crt, server_key = self.tls / "server.crt", self.tls / "server.key"
        if server_crt.exists() and server_key.exists() and self.ca_file.exists():
            return False
        openssl = shutil.which("openssl")
        if openssl is None:
            raise RuntimeProblem("openssl not found: it makes the local TLS certificates")
        self.tls.mkdir(parents=True, exist_ok=True)
        key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        extensions = self.tls / "server.ext"
        extensions.write_text(
            "subjectAltName = DNS:localhost, IP:127.0.0.1\n"
            "basicConstraints = critical, CA:FALSE\n"
            "keyUsage = critical, digitalSignature, keyEncipherment\n"
            "extendedKeyUsage = serverAuth\n"
        )
        steps = [
            [openssl, "req", "-x509", *key, "-days", "3650", "-subj", "/CN=ioc local CA",
             "-keyout", self.tls / "ca.key", "-out", self.ca_file],
            [openssl, "req", *key, "-subj", "/CN=localhost", "-keyout", server_key,
             "-out", self.tls / "server.csr"],
            [openssl, "x509", "-req", "-in", self.tls / "server.csr", "-CA", self.ca_file,
             "-CAkey", self.tls / "ca.key", "-CAcreateserial", "-days", "825",
             "-extfile", extensions, "-out", server_crt],
        ]  # fmt: skip
        for step in steps:
            done = subprocess.run([str(a) for a in step], capture_output=True, text=True,
                                  check=False)  # fmt: skip
            if done.returncode != 0:
                raise RuntimeProblem(f"openssl failed: {done.stderr[-1500:]}")
        for private in (self.tls / "ca.key", server_key):
            private.chmod(0o600)
        self._own(self.tls, server_key, server_crt, self.ca_file)
        log.info("postgres.tls_certificates", ca=str(self.ca_file))
        return True

    def write_config(self) -> None:
        """Our settings go in an include file, rewritten on every start (port etc. from Settings);
        pg_hba.conf too: trust on the Unix socket (the superuser, for `ioc dev up`),
        scram-sha-256 for every TCP connection, with or without TLS."""
        conf = self.data / "postgresql.conf"
        include = "include_if_exists = 'ioc.conf'"
        if include not in conf.read_text():
            with conf.open("a") as handle:
                handle.write(f"\n{include}\n")
        (self.data / "ioc.conf").write_text(
            "# written by `ioc dev up`; edit Settings instead\n"
            f"port = {self.port}\n"
            "listen_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{self.run_dir}'\n"
            "max_connections = 100\n"
            "shared_buffers = 256MB\n"
            "work_mem = 16MB\n"
            "maintenance_work_mem = 128MB\n"
            "max_wal_size = 2GB\n"
            "checkpoint_timeout = 15min\n"
            "wal_compression = on\n"
            "shared_preload_libraries = 'pg_stat_statements'\n"
            "log_min_duration_statement = 2000\n"
            "log_line_prefix = '%m [%p] %q%u@%d '\n"
            "timezone = 'UTC'\n"
            "password_encryption = 'scram-sha-256'\n"
            "ssl = on\n"
            f"ssl_cert_file = '{self.tls / 'server.crt'}'\n"
            f"ssl_key_file = '{self.tls / 'server.key'}'\n"
            "ssl_min_protocol_version = 'TLSv1.2'\n"
        )
        (self.data / "pg_hba.conf").write_text(
            "# written by `ioc dev up`: the superuser over the socket, every role over TCP with\n"
            "# a SCRAM password (TLS when the client asks: IOC_DB__SSLMODE)\n"
            "local  all  all                 trust\n"
            "host   all  all  127.0.0.1/32   scram-sha-256\n"
            "host   all  all  ::1/128        scram-sha-256\n"
        )
        self._own(self.data / "ioc.conf", self.data / "pg_hba.conf")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._own(self.run_dir)

    # -- run ----------------------------------------------------------------------------------
    def pid(self) -> int | None:
        pid = read_pid(self.data / "postmaster.pid")
        return pid if pid_alive(pid, "postgres") else None

    def start(self) -> str:
        if self.pid():
            if self.ready():
                self.bootstrap()
                return "already running"
            raise RuntimeProblem(
                f"PostgreSQL (pid {self.pid()}) runs but does not answer; see {self.log_file}"
            )
        if not port_is_free(self.port):
            raise taken_port_error(self.port, "PostgreSQL", "IOC_DB__PORT")
        self.install()
        self.init_cluster()
        self.make_certificates()
        self.write_config()
        if not self.log_file.exists():
            self.log_file.touch()
        self._own(self.log_file)
        self._run(
            self.bin / "pg_ctl", "-D", self.data, "-l", self.log_file, "-w",
            "-t", str(round(self.settings.dev.start_timeout_s)), "start",
        )  # fmt: skip
        if not self.ready():
            raise RuntimeProblem(f"PostgreSQL started but does not answer; see {self.log_file}")
        self.bootstrap()
        return "started"

    def superuser_conninfo(self, dbname: str = "postgres") -> str:
        return f"host={self.run_dir} port={self.port} user=postgres dbname={dbname}"

    def ready(self, timeout: float = 5.0) -> bool:
        import psycopg

        try:
            with psycopg.connect(
                self.superuser_conninfo(), connect_timeout=max(1, round(timeout))
            ) as conn:
                conn.execute("select 1")
            return True
        except psycopg.OperationalError:
            return False

    def bootstrap(self) -> None:
        """Roles and database from Settings; idempotent (passwords re-applied every time)."""
        import psycopg
        from psycopg import sql

        db = self.settings.db
        with psycopg.connect(self.superuser_conninfo(), autocommit=True) as conn:
            for role in ROLES:
                user, password = db.credentials(role)
                exists = conn.execute(
                    "select 1 from pg_roles where rolname = %s", (user,)
                ).fetchone()
                verb = "alter" if exists else "create"
                # a SCRAM verifier made here: the password itself never reaches the server
                verifier = conn.pgconn.encrypt_password(
                    password.get_secret_value().encode(), user.encode(), b"scram-sha-256"
                )
                conn.execute(
                    sql.SQL(verb + " role {} with login password {}").format(
                        sql.Identifier(user), sql.Literal(verifier.decode())
                    )
                )
            if not conn.execute(
                "select 1 from pg_database where datname = %s", (db.name,)
            ).fetchone():
                conn.execute(
                    sql.SQL("create database {} owner {}").format(
                        sql.Identifier(db.name), sql.Identifier(db.owner_user)
                    )
                )
            conn.execute(
                sql.SQL("revoke all on database {} from public").format(sql.Identifier(db.name))
            )
            conn.execute(
                sql.SQL("grant connect, temporary on database {} to {}").format(
                    sql.Identifier(db.name),
                    sql.SQL(", ").join(sql.Identifier(u) for u in db.users()[1:]),
                )
            )
        with psycopg.connect(self.superuser_conninfo(db.name), autocommit=True) as conn:
            # pg_stat_statements is preloaded; the extension makes it queryable (needs superuser).
            conn.execute("create extension if not exists pg_stat_statements")

    def stop(self) -> str:
        if not self.pid():
            return "not running"
        self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        return "stopped"

    def version(self) -> str:
        postgres = self.bin / "postgres"
        if not postgres.exists():
            return "PostgreSQL 15 (not installed)"
        out = subprocess.run(
            [str(postgres), "--version"], capture_output=True, text=True, check=False
        )
        return out.stdout.strip().replace("postgres (PostgreSQL)", "PostgreSQL") or "PostgreSQL"

    def status(self) -> ComponentStatus:
        pid = self.pid()
        address = f"127.0.0.1:{self.port}"
        flavour = f"flavour {self.settings.db.flavour}, database {self.settings.db.name}, data {self.data}"
        if not pid:
            return ComponentStatus(self.name, self.version(), address, None, "down", flavour)
        health = "up" if self.ready(timeout=3.0) else "unhealthy: no answer to select 1"
        return ComponentStatus(self.name, self.version(), address, pid, health, flavour)


# ---------------------------------------------------------------------------------------------


def tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_gone(pid: int, needle: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid, needle):
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    return not pid_alive(pid, needle)


def components(settings: Settings) -> list[LocalKafka | LocalPostgres]:
    return [LocalPostgres(settings), LocalKafka(settings)]


def log_files(settings: Settings) -> dict[str, Path]:
    kafka, postgres = LocalKafka(settings), LocalPostgres(settings)
    return {"kafka": kafka.log_file, "postgres": postgres.log_file}


def cluster_uuid() -> str:
    """A KRaft cluster id as Kafka's own `random-uuid` makes it: 16 random bytes, URL-safe base64
    without padding, never starting with "-" (the storage tool would read it as an option)."""
    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not found.startswith("-"):
            return found

"""How every Kafka client of the project connects: PLAINTEXT, or SASL/SCRAM over TLS as one
principal (Settings.kafka: security_protocol, username, password, ssl_cafile).

`client_options` gives the keyword arguments of every aiokafka client (producer, consumer,
admin); the Faust app takes the same through `faust_credentials` in streams/faust_ext.py.

aiokafka logs a refused SASL handshake and then raises only "Unable to bootstrap from ...".
`probe` opens one connection per bootstrap host itself and raises `KafkaAccessProblem` naming
the principal and the broker's own reason (authentication failed, certificate not trusted,
the listener speaks another protocol), so that a command can say what is wrong before it starts.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from pathlib import Path
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from streams.settings import KafkaSettings


class KafkaAccessProblem(Exception):
    """The broker refuses these settings; the message says why and what to check."""


class KafkaUnreachable(KafkaAccessProblem):
    """No bootstrap host completed a connection (down, refused, or closed it at once)."""


@functools.cache
def _ssl_context(cafile: Path | None, check_hostname: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(cafile) if cafile else None
    )
    context.check_hostname = check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context that trusts the brokers' CA (one per CA file and process), or None in
    PLAINTEXT."""
    if not kafka.secure:
        return None
    return _ssl_context(kafka.ssl_cafile, kafka.ssl_check_hostname)


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
    options: dict[str, Any] = {"bootstrap_servers": kafka.bootstrap}
    if kafka.secure:
        assert kafka.password is not None  # KafkaSettings refuses SASL_SSL without one
        options |= {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": kafka.sasl_mechanism,
            "sasl_plain_username": kafka.username,
            "sasl_plain_password": kafka.password.get_secret_value(),
            "ssl_context": ssl_context(kafka),
        }
    return options


def principal(kafka: KafkaSettings) -> str:
    return f"User:{kafka.username}" if kafka.secure else "User:ANONYMOUS (PLAINTEXT)"


async def probe(kafka: KafkaSettings, timeout: float = 10.0) -> None:
    """Connect (and authenticate) to the first bootstrap host that answers; raise
    KafkaAccessProblem with the real cause when none does."""
    options = client_options(kafka)
    options.pop("bootstrap_servers")
    reasons = []
    for part in kafka.bootstrap.split(","):
        host, _, port = part.strip().rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(host, int(port), request_timeout_ms=int(timeout * 1000), **options),
                timeout,
            )
        except SaslAuthenticationFailed as exc:
            raise KafkaAccessProblem(
                f"Kafka authentication failed for principal {principal(kafka)} at {host}:{port} "
                f"({kafka.sasl_mechanism}): {exc}. Check IOC_KAFKA__USERNAME and "
                "IOC_KAFKA__PASSWORD (a rotated credential needs the new password)."
            ) from None
        except UnsupportedSaslMechanismError as exc:
            raise KafkaAccessProblem(
                f"Kafka at {host}:{port} refuses {principal(kafka)}: {exc}"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise KafkaAccessProblem(
                f"the TLS certificate of Kafka at {host}:{port} is not trusted: "
                f"{exc.verify_message}; set IOC_KAFKA__SSL_CAFILE to the CA that signed it"
            ) from None
        except ssl.SSLError as exc:
            reasons.append(
                f"{host}:{port}: TLS handshake failed ({exc.reason}); does that listener "
                f"speak {kafka.security_protocol}?"
            )
        except (KafkaConnectionError, OSError, TimeoutError) as exc:
            reasons.append(f"{host}:{port}: {type(exc).__name__}: {exc}")
        except KafkaError as exc:
            reasons.append(f"{host}:{port}: {type(exc).__name__}: {exc}")
        else:
            conn.close()
            return
    hint = (
        ""
        if kafka.secure
        else " (a broker in secure mode closes PLAINTEXT connections: set "
        "IOC_KAFKA__SECURITY_PROTOCOL=SASL_SSL and a principal)"
    )
    raise KafkaUnreachable(
        f"no Kafka broker of {kafka.bootstrap} answers {kafka.security_protocol} as "
        f"{principal(kafka)}: {'; '.join(reasons)}{hint}"
    )

"""Kafka client configuration from the settings: the one place that reads security settings.

Two clients talk to Kafka: librdkafka (confluent-kafka: the topic admin client,
``reviewpulse replay``, the tests' consumers) and aiokafka under Faust (the
worker's consumer and producer). :func:`client_config` builds the former's
config dict, :func:`faust_credentials` the latter's ``broker_credentials``;
both from the same :class:`~streams.settings.KafkaSecuritySettings`.

The dict from :func:`client_config` holds the password in clear text, as
librdkafka needs it: pass it to a client, never log it. :func:`redacted`
gives a copy that is safe to show.

librdkafka does not fail a call when the broker rejects the credentials: it
retries and reports the rejection through ``error_cb``. :class:`RefusalMonitor`
is that callback; its :meth:`~RefusalMonitor.check` turns a rejection into a
:class:`~streams.errors.KafkaConfigError` (the broker's reason, which names
the mechanism, never the password).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping

from confluent_kafka import KafkaError
from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT

from streams.errors import KafkaConfigError
from streams.settings import KafkaSecuritySettings

SECRET_KEYS = frozenset({"sasl.password", "ssl.key.password"})

#: librdkafka error codes that retrying will not fix: Kafka refuses this client or request.
REFUSAL_CODES = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError._SSL,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.UNSUPPORTED_SASL_MECHANISM,
        KafkaError.ILLEGAL_SASL_STATE,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    }
)


def client_config(bootstrap: str, security: KafkaSecuritySettings) -> dict[str, str]:
    """The confluent-kafka (librdkafka) config: bootstrap servers plus security settings.

    Callers add their own keys (``group.id``, ``acks``, …) to the returned dict.
    """
    config = {"bootstrap.servers": bootstrap, "security.protocol": security.protocol}
    if security.uses_sasl:
        username, password = _sasl_login(security)
        config["sasl.mechanism"] = security.sasl_mechanism
        config["sasl.username"] = username
        config["sasl.password"] = password
    if security.uses_ssl:
        if security.ssl_cafile is not None:
            config["ssl.ca.location"] = str(security.ssl_cafile)
        if security.ssl_certfile is not None:
            config["ssl.certificate.location"] = str(security.ssl_certfile)
        if security.ssl_keyfile is not None:
            config["ssl.key.location"] = str(security.ssl_keyfile)
        if security.ssl_key_password is not None:
            config["ssl.key.password"] = security.ssl_key_password.get_secret_value()
    return config


def redacted(config: Mapping[str, object]) -> dict[str, object]:
    """A copy of a client config with its secrets masked, fit for logs and error messages."""
    return {k: "**********" if k in SECRET_KEYS else v for k, v in config.items()}


class RefusalMonitor:
    """A librdkafka ``error_cb`` that remembers the errors meaning "Kafka refuses this client".

    librdkafka calls it from ``poll()``/``flush()`` (for an ``AdminClient``, from its ``poll()``).
    """

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.refusals: list[KafkaError] = []

    def __call__(self, error: KafkaError) -> None:
        if error.code() in REFUSAL_CODES:
            self.refusals.append(error)

    def check(self) -> None:
        """Raise :class:`KafkaConfigError` if Kafka refused the client since it was created."""
        if self.refusals:
            raise KafkaConfigError(
                f"Kafka at {self.bootstrap} refused this client: {self.refusals[-1].str()}"
            )


def ssl_context(security: KafkaSecuritySettings) -> ssl.SSLContext:
    """A TLS client context that verifies the brokers (CA file or system CAs), with mTLS if set."""
    cafile = str(security.ssl_cafile) if security.ssl_cafile is not None else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    if security.ssl_certfile is not None:
        password = security.ssl_key_password
        context.load_cert_chain(
            str(security.ssl_certfile),
            str(security.ssl_keyfile) if security.ssl_keyfile is not None else None,
            password.get_secret_value() if password is not None else None,
        )
    return context


def faust_credentials(security: KafkaSecuritySettings) -> CredentialsT | None:
    """Faust's ``broker_credentials`` for ``security``; None for PLAINTEXT.

    Faust (faust/transport/drivers/aiokafka.py ``credentials_to_aiokafka_auth``)
    derives aiokafka's ``security_protocol`` from the credentials: SASLCredentials
    without an SSL context is SASL_PLAINTEXT, with one SASL_SSL; SSLCredentials is SSL.
    """
    context = ssl_context(security) if security.uses_ssl else None
    if security.uses_sasl:
        username, password = _sasl_login(security)
        return SASLCredentials(
            username=username,
            password=password,
            ssl_context=context,
            mechanism=security.sasl_mechanism,
        )
    if context is not None:
        return SSLCredentials(context)
    return None


def _sasl_login(security: KafkaSecuritySettings) -> tuple[str, str]:
    # KafkaSecuritySettings' validator already refuses SASL without them.
    if not security.sasl_username or security.sasl_password is None:
        raise ValueError(f"protocol {security.protocol} needs sasl_username and sasl_password")
    return security.sasl_username, security.sasl_password.get_secret_value()

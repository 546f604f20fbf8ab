"""Kafka security settings → client configs, Faust credentials and app; no broker needed."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from typing import Any, cast

import faust
import pytest
from faust.auth import SASLCredentials, SSLCredentials
from pydantic import ValidationError

from streams.errors import TopicSetupError
from streams.service.app import create_app
from streams.service.kafka_config import client_config, faust_credentials, redacted
from streams.service.topics import ensure_topics
from streams.settings import KafkaSecuritySettings, Settings, TopicSettings

SECRET = "s3cr3t-Pa55word"
SASL_ENV = {
    "REVIEWPULSE_KAFKA__BOOTSTRAP": "b1:9093,b2:9093",
    "REVIEWPULSE_KAFKA__SECURITY__PROTOCOL": "SASL_PLAINTEXT",
    "REVIEWPULSE_KAFKA__SECURITY__SASL_MECHANISM": "SCRAM-SHA-512",
    "REVIEWPULSE_KAFKA__SECURITY__SASL_USERNAME": "svc",
    "REVIEWPULSE_KAFKA__SECURITY__SASL_PASSWORD": SECRET,
}


def settings_from(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed certificate (also the CA) and its key, encrypted with ``SECRET``."""
    root = tmp_path_factory.mktemp("tls")
    cert, key = root / "client.pem", root / "client.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-days", "2", "-subj", "/CN=test",
         "-keyout", str(key), "-out", str(cert), "-passout", f"pass:{SECRET}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return {"cert": cert, "key": key}


def test_sasl_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    security = settings_from(monkeypatch, SASL_ENV).kafka.security
    assert (security.protocol, security.sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-512")
    assert security.sasl_password is not None
    assert security.sasl_password.get_secret_value() == SECRET


def test_defaults_are_plaintext_and_single_replica() -> None:
    settings = Settings(_env_file=None)
    assert settings.kafka.security.protocol == "PLAINTEXT"
    assert client_config("h:9092", settings.kafka.security) == {
        "bootstrap.servers": "h:9092",
        "security.protocol": "PLAINTEXT",
    }
    assert faust_credentials(settings.kafka.security) is None
    topics = settings.kafka.topics
    assert (topics.replication_factor, topics.min_insync_replicas) == (1, 1)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"protocol": "SASL_SSL"}, "needs sasl_username"),
        ({"protocol": "SASL_PLAINTEXT", "sasl_username": "u"}, "needs sasl_password"),
        ({"protocol": "SASL_PLAINTEXT", "sasl_username": "u", "sasl_password": ""}, "password"),
        ({"protocol": "PLAINTEXT", "sasl_username": "u", "sasl_password": "p"}, "SASL_SSL"),
        ({"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "GSSAPI"}, "sasl_mechanism"),
        ({"protocol": "PLAIN"}, "protocol"),
        ({"protocol": "SSL", "ssl_cafile": "/no/such/ca.pem"}, "ssl_cafile"),
    ],
)
def test_invalid_combinations_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaSecuritySettings(**fields)


def test_tls_settings_must_fit_the_protocol(tls_files: dict[str, Path]) -> None:
    cert = str(tls_files["cert"])
    with pytest.raises(ValidationError, match="has no TLS"):
        KafkaSecuritySettings(
            protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p", ssl_cafile=cert
        )
    with pytest.raises(ValidationError, match="go together"):
        KafkaSecuritySettings(protocol="SSL", ssl_certfile=cert)
    with pytest.raises(ValidationError, match="without ssl_keyfile"):
        KafkaSecuritySettings(protocol="SSL", ssl_key_password=SECRET)


def test_invalid_security_settings_do_not_quote_the_password() -> None:
    with pytest.raises(ValidationError, match="needs sasl_username") as error:
        KafkaSecuritySettings(protocol="SASL_SSL", sasl_password=SECRET)
    assert SECRET not in str(error.value)


def test_missing_sasl_username_from_the_environment_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {k: v for k, v in SASL_ENV.items() if not k.endswith("USERNAME")}
    with pytest.raises(ValidationError, match="SASL_PLAINTEXT needs sasl_username"):
        settings_from(monkeypatch, env)


def test_settings_errors_from_the_environment_do_not_quote_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {k: v for k, v in SASL_ENV.items() if not k.endswith("USERNAME")}
    with pytest.raises(ValidationError) as error:
        settings_from(monkeypatch, env)
    assert SECRET not in str(error.value)


def test_replication_settings_are_consistent() -> None:
    with pytest.raises(ValidationError, match="cannot exceed replication_factor"):
        TopicSettings(replication_factor=1, min_insync_replicas=2)
    assert TopicSettings(replication_factor=3, min_insync_replicas=2).min_insync_replicas == 2


def test_sasl_client_config_and_faust_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(monkeypatch, SASL_ENV)
    config = client_config(settings.kafka.bootstrap, settings.kafka.security)
    assert config == {
        "bootstrap.servers": "b1:9093,b2:9093",
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": SECRET,
    }
    assert redacted(config)["sasl.password"] == "**********"
    assert SECRET not in repr(redacted(config))
    credentials = faust_credentials(settings.kafka.security)
    assert isinstance(credentials, SASLCredentials)
    assert (credentials.username, credentials.password) == ("svc", SECRET)
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.protocol.value == "SASL_PLAINTEXT" and credentials.ssl_context is None


def test_sasl_ssl_with_mutual_tls(tls_files: dict[str, Path]) -> None:
    cert, key = tls_files["cert"], tls_files["key"]
    security = KafkaSecuritySettings(
        protocol="SASL_SSL",
        sasl_username="svc",
        sasl_password=SECRET,
        ssl_cafile=cert,
        ssl_certfile=cert,
        ssl_keyfile=key,
        ssl_key_password=SECRET,
    )
    config = client_config("b:9093", security)
    assert config["ssl.ca.location"] == str(cert)
    assert config["ssl.certificate.location"] == str(cert)
    assert config["ssl.key.location"] == str(key)
    assert config["ssl.key.password"] == SECRET
    credentials = faust_credentials(security)
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    context = credentials.ssl_context
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == 1
    assert SECRET not in repr(security) and SECRET not in repr(credentials)


def test_ssl_only_uses_faust_ssl_credentials(tls_files: dict[str, Path]) -> None:
    security = KafkaSecuritySettings(protocol="SSL", ssl_cafile=tls_files["cert"])
    credentials = faust_credentials(security)
    assert isinstance(credentials, SSLCredentials)
    assert credentials.protocol.value == "SSL"
    assert client_config("b:9093", security)["security.protocol"] == "SSL"


def test_wrong_key_password_fails_without_showing_it(tls_files: dict[str, Path]) -> None:
    security = KafkaSecuritySettings(
        protocol="SSL",
        ssl_certfile=tls_files["cert"],
        ssl_keyfile=tls_files["key"],
        ssl_key_password="not-the-key-password",
    )
    with pytest.raises(ssl.SSLError) as error:
        faust_credentials(security)
    assert "not-the-key-password" not in str(error.value)


def test_app_gets_credentials_replication_and_none_of_fausts_builtin_views(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {**SASL_ENV, "REVIEWPULSE_KAFKA__TOPICS__REPLICATION_FACTOR": "3"}
    app = create_app(settings_from(monkeypatch, env))
    assert isinstance(app.conf.broker_credentials, SASLCredentials)
    assert app.conf.broker_credentials.password == SECRET
    assert [(u.host, u.port) for u in app.conf.broker] == [("b1", 9093), ("b2", 9093)]
    assert app.conf.topic_replication_factor == 3
    assert app.conf.producer_acks == -1
    assert _routes(app) == {"/"}  # Faust's plain production index only
    # the same check finds /router and /table on a default Faust app
    assert {"/router/", "/table/"} <= _routes(faust.App("default", autodiscover=False))


def _routes(app: faust.App) -> set[str]:
    web = app.web
    web.blueprints.apply(web)
    router = cast(Any, web).web_app.router  # the aiohttp driver's application
    return {route.resource.canonical for route in router.routes()}


def test_unreachable_broker_error_names_the_servers_not_the_password(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_from(
        monkeypatch, {**SASL_ENV, "REVIEWPULSE_KAFKA__BOOTSTRAP": "127.0.0.1:1"}
    )
    k = settings.kafka
    with pytest.raises(TopicSetupError, match=r"127\.0\.0\.1:1 unreachable") as error:
        ensure_topics(k.bootstrap, ["t"], 1, security=k.security, timeout_s=1)
    assert SECRET not in str(error.value) and SECRET not in caplog.text
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())

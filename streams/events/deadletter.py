"""The dead letter (topic ``deadletter``): a rejected record, why, and where it came from.

Its size is bounded whatever the record's: the original bytes are kept whole
up to a limit, then cut (``original_truncated``), while ``original_size`` and
``original_sha256`` always describe the whole record, and ``detail`` is at
most 500 characters. Times stay epoch milliseconds until :meth:`to_json`.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, replace

import orjson

from streams.events.contract import Source, iso_ms

MAX_DETAIL_CHARS = 500


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    detail: str
    source: Source
    original_b64: str
    original_truncated: bool
    original_size: int
    original_sha256: str
    failed_at_ms: int

    @classmethod
    def of(
        cls,
        raw: bytes,
        source: Source,
        reason: str,
        detail: str,
        now_ms: int,
        max_original_bytes: int,
    ) -> DeadLetter:
        """The dead letter of the record ``raw``, rejected for ``reason`` at ``now_ms``."""
        if len(detail) > MAX_DETAIL_CHARS:
            detail = detail[: MAX_DETAIL_CHARS - 1] + "…"
        return cls(
            reason=reason,
            detail=detail,
            source=source,
            original_b64=base64.b64encode(raw[:max_original_bytes]).decode("ascii"),
            original_truncated=len(raw) > max_original_bytes,
            original_size=len(raw),
            original_sha256=hashlib.sha256(raw).hexdigest(),
            failed_at_ms=now_ms,
        )

    def without_original(self) -> DeadLetter:
        """The same letter with no original bytes, for a topic too small to take them."""
        return replace(self, original_b64="", original_truncated=True)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "reason": self.reason,
                "detail": self.detail,
                "source": {
                    "topic": self.source.topic,
                    "partition": self.source.partition,
                    "offset": self.source.offset,
                    "timestamp": iso_ms(self.source.timestamp_ms),
                },
                "original_b64": self.original_b64,
                "original_truncated": self.original_truncated,
                "original_size": self.original_size,
                "original_sha256": self.original_sha256,
                "failed_at": iso_ms(self.failed_at_ms),
            }
        )

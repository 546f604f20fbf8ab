"""The input contract: decode and validate input events.

Pure functions, no I/O. :func:`parse_review` and :func:`parse_question` turn the
raw bytes of a Kafka record into a typed event or raise
:class:`~streams.errors.InvalidEvent` with a machine-readable reason; the
pipeline turns that error into a dead letter (:mod:`streams.events.deadletter`).
The JSON Schemas ``schemas/review.json`` and ``schemas/question.json`` publish
the same contract for other services (``tests/unit/test_input_schemas.py``
checks that both agree). The output events are in :mod:`streams.events.enriched`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from streams.errors import InvalidEvent

MAX_ID_CHARS = 256
# Integer timestamps below this are epoch seconds, from it on epoch milliseconds. The
# two never meet inside the accepted range: 10**11 s is the year 5138, 10**11 ms 1973.
EPOCH_SECONDS_BELOW = 10**11
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Limits:
    """The input contract's bounds (``settings.input``); the JSON Schemas publish the same.

    ``ts`` must fall in ``[min_ts_ms, now + max_future_ms]``, where now is the
    time of processing, so that every stored timestamp is one ClickHouse's
    ``DateTime`` holds and its TTLs expire.
    """

    max_input_bytes: int = 65_536
    max_text_chars: int = 5000
    max_user_id_chars: int = 256
    max_category_chars: int = 128
    max_lang_chars: int = 35
    min_ts_ms: int = 946_684_800_000  # 2000-01-01T00:00:00Z
    max_future_ms: int = DAY_MS
    max_original_bytes: int = 65_536


@dataclass(frozen=True)
class Source:
    """Where a record came from: ``topic[partition]@offset`` and its Kafka timestamp."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True)
class Review:
    event_id: str
    product_id: str
    text: str
    ts_ms: int
    rating: int | None = None
    user_id: str | None = None
    category: str | None = None
    lang: str | None = None

    def fields(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "product_id": self.product_id,
            "text": self.text,
            "rating": self.rating,
            "user_id": self.user_id,
            "category": self.category,
            "ts": iso_ms(self.ts_ms),
            "lang": self.lang,
        }


@dataclass(frozen=True)
class Question:
    event_id: str
    product_id: str
    text: str
    ts_ms: int
    user_id: str | None = None

    def fields(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "product_id": self.product_id,
            "text": self.text,
            "user_id": self.user_id,
            "ts": iso_ms(self.ts_ms),
        }


# The instants datetime can show: 0001-01-02 … 9999-12-30 (a day inside, for any zone).
_ISO_MIN_MS = -62_135_510_400_000
_ISO_MAX_MS = 253_402_128_000_000


def iso_ms(ts_ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with millisecond precision.

    Clamped to what ``datetime`` can show, so that it never raises: validated
    event times are always well inside, but a Kafka record timestamp may not be.
    """
    clamped = min(max(ts_ms, _ISO_MIN_MS), _ISO_MAX_MS)
    return datetime.fromtimestamp(clamped / 1000, UTC).isoformat(timespec="milliseconds")


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent("invalid_utf8", f"not UTF-8 at byte {exc.start}") from exc
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("invalid_json", str(exc)) from exc
    if not isinstance(data, dict):
        raise InvalidEvent("not_an_object", f"expected a JSON object, got {type(data).__name__}")
    return data


def _required_str(data: dict[str, Any], name: str) -> str:
    if name not in data or data[name] is None:
        raise InvalidEvent("missing_field", f"'{name}' is required")
    value = data[name]
    if not isinstance(value, str):
        raise InvalidEvent("wrong_type", f"'{name}' must be a string, got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise InvalidEvent("missing_field", f"'{name}' is empty")
    if len(value) > MAX_ID_CHARS:
        raise InvalidEvent("invalid_value", f"'{name}' is longer than {MAX_ID_CHARS} characters")
    return value


def _optional_str(data: dict[str, Any], name: str, max_chars: int) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent("wrong_type", f"'{name}' must be a string, got {type(value).__name__}")
    value = value.strip()
    if len(value) > max_chars:
        raise InvalidEvent(
            "invalid_value", f"'{name}' has {len(value)} characters; the limit is {max_chars}"
        )
    return value or None


def _text(data: dict[str, Any], max_chars: int) -> str:
    if "text" not in data or data["text"] is None:
        raise InvalidEvent("missing_field", "'text' is required")
    value = data["text"]
    if not isinstance(value, str):
        raise InvalidEvent("wrong_type", f"'text' must be a string, got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise InvalidEvent("empty_text", "'text' is empty after trimming")
    if len(value) > max_chars:
        raise InvalidEvent(
            "text_too_long", f"'text' has {len(value)} characters; the limit is {max_chars}"
        )
    return value


def _rating(data: dict[str, Any]) -> int | None:
    value = data.get("rating")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent("wrong_type", f"'rating' must be a number, got {type(value).__name__}")
    if not isinstance(value, int) or not 1 <= value <= 5:
        raise InvalidEvent("invalid_value", f"'rating' must be an integer 1-5, got {value!r}")
    return value


def _ts_ms(data: dict[str, Any], default_ms: int, limits: Limits, now_ms: int) -> int:
    """``ts`` as epoch ms: ISO-8601 with a zone, or an integer (seconds below 10**11, else ms)."""
    value = data.get("ts")
    if value is None:
        ts = default_ms
    elif isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidEvent(
            "wrong_type", "'ts' must be ISO-8601 text with a zone, or integer epoch s/ms"
        )
    elif isinstance(value, int):
        ts = value * 1000 if abs(value) < EPOCH_SECONDS_BELOW else value
    else:
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidEvent("invalid_value", f"'ts' is not ISO-8601: {text[:64]!r}") from exc
        if parsed.tzinfo is None:
            raise InvalidEvent("invalid_value", f"'ts' has no time zone: {text[:64]!r}")
        try:
            ts = int(parsed.astimezone(UTC).timestamp() * 1000)
        except (OverflowError, ValueError) as exc:
            raise InvalidEvent("invalid_value", f"'ts' is out of range: {text[:64]!r}") from exc
    latest = now_ms + limits.max_future_ms
    if not limits.min_ts_ms <= ts <= latest:
        raise InvalidEvent(
            "invalid_value",
            f"'ts' {str(value)[:64]!r} is outside {iso_ms(limits.min_ts_ms)} … {iso_ms(latest)}",
        )
    return ts


def _decode_bounded(raw: bytes, limits: Limits) -> dict[str, Any]:
    if len(raw) > limits.max_input_bytes:
        raise InvalidEvent("too_large", f"{len(raw)} bytes; the limit is {limits.max_input_bytes}")
    return _decode(raw)


def parse_review(raw: bytes, default_ts_ms: int, limits: Limits, now_ms: int) -> Review:
    """Decode one review record or raise :class:`InvalidEvent`.

    ``default_ts_ms`` (the Kafka timestamp) stands in for a missing ``ts``;
    ``now_ms``, the time of processing, bounds ``ts`` from above.
    """
    data = _decode_bounded(raw, limits)
    return Review(
        event_id=_required_str(data, "event_id"),
        product_id=_required_str(data, "product_id"),
        text=_text(data, limits.max_text_chars),
        ts_ms=_ts_ms(data, default_ts_ms, limits, now_ms),
        rating=_rating(data),
        user_id=_optional_str(data, "user_id", limits.max_user_id_chars),
        category=_optional_str(data, "category", limits.max_category_chars),
        lang=_optional_str(data, "lang", limits.max_lang_chars),
    )


def parse_question(raw: bytes, default_ts_ms: int, limits: Limits, now_ms: int) -> Question:
    """Decode one customer-question record or raise :class:`InvalidEvent`."""
    data = _decode_bounded(raw, limits)
    return Question(
        event_id=_required_str(data, "event_id"),
        product_id=_required_str(data, "product_id"),
        text=_text(data, limits.max_text_chars),
        ts_ms=_ts_ms(data, default_ts_ms, limits, now_ms),
        user_id=_optional_str(data, "user_id", limits.max_user_id_chars),
    )

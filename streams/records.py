"""The event contract: decode and validate input events, build enriched ones.

Pure functions, no I/O. :func:`parse_review` and :func:`parse_question` turn the
raw bytes of a Kafka record into a typed event or raise
:class:`~streams.errors.InvalidEvent` with a machine-readable reason; the
agents turn that error into a dead letter. The JSON Schema files in
``streams/schemas/`` publish the same contract for other services.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from streams.errors import InvalidEvent

MAX_ID_CHARS = 256


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


def iso_ms(ts_ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with millisecond precision."""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="milliseconds")


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


def _optional_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent("wrong_type", f"'{name}' must be a string, got {type(value).__name__}")
    return value.strip() or None


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
    if value != int(value) or not 1 <= value <= 5:
        raise InvalidEvent("invalid_value", f"'rating' must be an integer 1-5, got {value}")
    return int(value)


def _ts_ms(data: dict[str, Any], default_ms: int) -> int:
    value = data.get("ts")
    if value is None:
        return default_ms
    if isinstance(value, bool):
        raise InvalidEvent("wrong_type", "'ts' must be ISO-8601 text or epoch milliseconds")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidEvent("invalid_value", f"'ts' is not ISO-8601: {value!r}") from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return int(parsed.timestamp() * 1000)
    raise InvalidEvent("wrong_type", "'ts' must be ISO-8601 text or epoch milliseconds")


def parse_review(raw: bytes, default_ts_ms: int, max_chars: int = 5000) -> Review:
    """Decode one review record or raise :class:`InvalidEvent`."""
    data = _decode(raw)
    return Review(
        event_id=_required_str(data, "event_id"),
        product_id=_required_str(data, "product_id"),
        text=_text(data, max_chars),
        ts_ms=_ts_ms(data, default_ts_ms),
        rating=_rating(data),
        user_id=_optional_str(data, "user_id"),
        category=_optional_str(data, "category"),
        lang=_optional_str(data, "lang"),
    )


def parse_question(raw: bytes, default_ts_ms: int, max_chars: int = 5000) -> Question:
    """Decode one customer-question record or raise :class:`InvalidEvent`."""
    data = _decode(raw)
    return Question(
        event_id=_required_str(data, "event_id"),
        product_id=_required_str(data, "product_id"),
        text=_text(data, max_chars),
        ts_ms=_ts_ms(data, default_ts_ms),
        user_id=_optional_str(data, "user_id"),
    )


def dead_letter(raw: bytes, source: Source, error: InvalidEvent, now_ms: int) -> dict[str, Any]:
    """The dead-letter record for a rejected input record."""
    return {
        "reason": error.reason,
        "detail": error.detail,
        "source": {
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
            "timestamp": iso_ms(source.timestamp_ms),
        },
        "original_b64": base64.b64encode(raw).decode("ascii"),
        "failed_at": iso_ms(now_ms),
    }


def model_info(name: str, version: str) -> dict[str, str]:
    return {"name": name, "version": version}


def enriched_review(
    review: Review,
    labels: tuple[str, ...],
    probs: list[float],
    model: dict[str, str],
    processed_ms: int,
) -> dict[str, Any]:
    """Input fields + ``sentiment`` {label, score, probs} + ``model`` + ``processed_at``."""
    best = max(range(len(labels)), key=probs.__getitem__)
    return {
        **review.fields(),
        "sentiment": {
            "label": labels[best],
            "score": probs[best],
            "probs": dict(zip(labels, probs, strict=True)),
        },
        "model": model,
        "processed_at": iso_ms(processed_ms),
    }


def enriched_question(
    question: Question, model: dict[str, str], processed_ms: int
) -> dict[str, Any]:
    """Input fields + ``model`` + ``processed_at`` (``intent`` arrives with the intent model)."""
    return {**question.fields(), "model": model, "processed_at": iso_ms(processed_ms)}


def dumps(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)

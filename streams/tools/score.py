"""``reviewpulse score``: the stream's enrichment for a JSONL file, no Kafka needed.

One output line per input line. An input line needs only ``text``; missing
``event_id``s are generated and ``product_id`` defaults to ``"unknown"``. A
line that breaks the contract gets ``{"line": n, "error": {reason, detail}}``.
A review line carries its ``sentiment``; a question line (``--kind question``) its
``intent``, ``answer`` or ``needs_human`` and the question ``model``, as on
``questions.enriched``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator

import orjson

from streams.events.contract import Source
from streams.service.pipeline import BatchProcessor, RawRecord


def _complete(line: bytes) -> bytes:
    """Fill in ``event_id``/``product_id`` when the line is a JSON object without them."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:  # the processor gives it its dead letter
        return line
    if not isinstance(data, dict):
        return line
    data.setdefault("event_id", str(uuid.uuid4()))
    data.setdefault("product_id", "unknown")
    return orjson.dumps(data)


def score_lines(
    lines: Iterable[bytes], processor: BatchProcessor, batch_size: int = 64
) -> Iterator[bytes]:
    """Yield one JSON line (no newline) per input line, in input order: the enriched event
    exactly as the stream emits it, or the error."""
    batch: list[RawRecord] = []
    now = time.time_ns() // 1_000_000

    def flush() -> Iterator[bytes]:
        result = processor.process(batch)
        enriched = iter(result.enriched)
        dead = {d.source.offset: d for d in result.dead_letters}
        for record in batch:
            offset = record.source.offset
            if offset in dead:
                d = dead[offset]
                error = {"reason": d.reason, "detail": d.detail}
                yield orjson.dumps({"line": offset + 1, "error": error})
            else:
                yield next(enriched).to_json()
        batch.clear()

    for n, line in enumerate(lines):
        batch.append(RawRecord(_complete(line.rstrip(b"\r\n")), Source("stdin", 0, n, now)))
        if len(batch) >= batch_size:
            yield from flush()
    if batch:
        yield from flush()

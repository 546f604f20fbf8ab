"""The benchmarks' review events: the demo sample's real English clothing reviews."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from streams.settings import REPO_ROOT

SAMPLE = REPO_ROOT / "deploy" / "demo" / "reviews.jsonl"


def review_events(n: int, path: Path = SAMPLE) -> list[dict[str, Any]]:
    """``n`` review events cycling over the sample's real reviews (not its malformed
    lines), each with its own ``event_id``."""
    events = []
    for line in path.read_bytes().splitlines():
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict) and str(event.get("event_id", "")).startswith("clothing-"):
            events.append(event)
    return [dict(events[i % len(events)], event_id=f"bench-{i}") for i in range(n)]

"""Durations as the settings and the API spell them: ``15m``, ``1h``, ``7d``."""

from __future__ import annotations

import re
from datetime import timedelta


def parse_duration(text: str) -> timedelta:
    """``15m`` / ``1h`` / ``7d`` → timedelta; the one spelling of windows and buckets."""
    match = re.fullmatch(r"([1-9][0-9]{0,4})([mhd])", text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 15m, 1h or 7d")
    return timedelta(minutes=int(match[1]) * {"m": 1, "h": 60, "d": 1440}[match[2]])

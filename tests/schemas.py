"""Validate events against the published JSON Schema files.

``date-time`` is checked as RFC 3339 defines it (jsonschema checks it only
when the optional ``rfc3339-validator`` is installed; here it always is).
"""

from __future__ import annotations

import calendar
import json
import re
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))$"
)
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time")
def rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True
    m = _RFC3339.match(value)
    if m is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    zone_h, zone_m = (int(m[9]), int(m[10])) if m[9] else (0, 0)
    return (
        1 <= month <= 12
        and 1 <= day <= calendar.monthrange(year, month)[1]
        and hour <= 23
        and minute <= 59
        and second <= 60  # a leap second
        and zone_h <= 23
        and zone_m <= 59
    )


@cache
def schema(name: str) -> dict[str, Any]:
    text = resources.files("streams.events").joinpath("schemas", f"{name}.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def validate(name: str, event: dict[str, Any]) -> None:
    jsonschema.validate(event, schema(name), format_checker=FORMATS)


def is_valid(name: str, event: object) -> bool:
    validator = jsonschema.Draft202012Validator(schema(name), format_checker=FORMATS)
    return bool(validator.is_valid(event))

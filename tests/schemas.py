"""Validate events against the published JSON Schema files."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema


@cache
def schema(name: str) -> dict[str, Any]:
    text = resources.files("streams.events").joinpath("schemas", f"{name}.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def validate(name: str, event: dict[str, Any]) -> None:
    jsonschema.validate(event, schema(name), format_checker=jsonschema.FormatChecker())

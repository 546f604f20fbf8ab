"""MODEL_CARD.md for the question package, from measured metrics only."""

from __future__ import annotations

import json
from typing import Any


def model_card(manifest: dict[str, Any], metrics: dict[str, Any]) -> str:
    """Placeholder card: the raw metrics (replaced by the full card below)."""
    return "# questions-zh-en\n\n```json\n" + json.dumps(metrics, indent=1) + "\n```\n"

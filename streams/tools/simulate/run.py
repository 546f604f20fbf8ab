"""The entry point ``reviewpulse simulate`` calls, and the settings it runs with.
:func:`run_simulation` simulates the streams once, runs every method over them, scores each
against the spikes and returns a :class:`~streams.tools.simulate.report.Report`, with the first
product alert that caught a spike as an example; :func:`parse_settings` builds the alert
settings from the command's ``--set FIELD=VALUE`` overrides.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from streams.alerts.calibration import plugin_binomial_sf
from streams.alerts.event import AlertEvent
from streams.alerts.settings import AlertSettings
from streams.tools.simulate.accounting import MethodResult, evaluate, in_target_class
from streams.tools.simulate.corpus import Corpus
from streams.tools.simulate.detectors import engine_firings, rule_firings
from streams.tools.simulate.report import Report
from streams.tools.simulate.streams import SimConfig, Streams, simulate_streams
from streams.tools.simulate.windows import window_counts

METHODS = ("detector", "plugin-binomial", "plain-binomial", "threshold", "oracle-binomial")


def run_simulation(
    corpus: Corpus,
    config: SimConfig,
    settings: AlertSettings,
    methods: Sequence[str] = METHODS,
) -> Report:
    """Simulate the streams once and run every method over them."""
    streams = simulate_streams(corpus, config)
    lengths = list(settings.window_lengths_ms().values())
    targets = [in_target_class(streams, s, lengths) for s in streams.spikes]
    results: list[MethodResult] = []
    example: dict[str, Any] | None = None
    records = (
        window_counts(streams, settings) if {"detector", "plugin-binomial"} & set(methods) else []
    )
    for method in methods:
        if method == "detector":
            firings, events = engine_firings(streams, settings, records=records)
            example = _example(streams, events)
        elif method == "plugin-binomial":
            firings, _ = engine_firings(streams, settings, plugin_binomial_sf, records)
        else:
            firings = rule_firings(streams, settings, method)
        results.append(evaluate(streams, method, firings, targets))
    return Report(
        config=config,
        settings=settings,
        reviews=len(streams.ts_ms),
        injected=int(streams.injected.sum()),
        categories=len(streams.categories),
        results=tuple(results),
        example_alert=example,
    )


def _example(streams: Streams, events: Sequence[AlertEvent]) -> dict[str, Any] | None:
    """The first product alert that caught a spike, as it would go on the alerts topic."""
    spiked = {s.product: s for s in streams.spikes}
    for e in events:
        if e.status != "firing" or e.product_id is None:
            continue
        s = spiked.get(int(e.product_id[1:]))
        if s and e.window_start_ms < s.end_ms and e.window_end_ms > s.start_ms:
            return e.to_json()
    return None


def parse_settings(overrides: Iterable[str]) -> AlertSettings:
    """Default alert settings with ``field=value`` overrides (values as JSON, else strings)."""
    fields: dict[str, Any] = {}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"expected FIELD=VALUE, got {item!r}")
        try:
            fields[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            fields[name.strip()] = value
    return AlertSettings(**fields)

"""Alert events as Alertmanager alerts: the ``POST /api/v2/alerts`` body, and a poster.

:func:`alertmanager_alerts` is pure: :class:`AlertEvent` records in, the
JSON-ready list Alertmanager's v2 API takes out. Labels identify an alert to
Alertmanager (it groups, silences and deduplicates on them), so they hold only
what stays fixed over an episode, plus ``severity`` for routing:

* ``alertname`` (``NegativeReviewSpike``), ``rule``
  (``negative_share_product_1h``), ``scope`` (product | category),
  ``window``, ``severity``, ``product_id`` (product alerts), ``category``
  (when known).

Annotations carry what changes from window to window: ``summary``,
``description`` (counts, baseline, p-value, window), ``evidence`` (excerpts of
the most negative reviews), ``alert_id``. ``startsAt`` is the episode's start
(its first window over the line), in event time. A resolved event sets
``endsAt`` to the end of the window that resolved it. A firing event sets
``endsAt`` only when ``firing_valid_ms`` is given (window end + that); then
Alertmanager resolves the alert by itself unless it is sent again before, so
give it more than the repeat interval (``(repeat_windows + 1)`` windows).
Without it Alertmanager applies its ``resolve_timeout`` (5 min by default) from
receipt. A warning that turns critical changes the ``severity`` label, so it is
a new alert to Alertmanager; the warning lapses at its ``endsAt``.

:func:`post_alerts` sends such a body with aiohttp: a timeout per attempt,
retries with exponential backoff on connection errors, timeouts, 429 and 5xx,
and no exception out: a failure is logged and reported as ``False`` (alerts
also go to the alerts topic and the store, which are the record).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import aiohttp

from streams.alerts.event import AlertEvent
from streams.events.contract import iso_ms

log = logging.getLogger(__name__)

ALERTNAME = "NegativeReviewSpike"
API_PATH = "/api/v2/alerts"
EXCERPT_CHARS = 200
EVIDENCE_SHOWN = 3


def _excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _window_label(rule: str) -> str:
    """``negative_share_product_1h`` → ``1h``."""
    return rule.rsplit("_", 1)[-1]


def _subject(e: AlertEvent) -> str:
    if e.product_id is not None:
        return f"product {e.product_id}" + (f" ({e.category})" if e.category else "")
    return f"category {e.category}"


def alertmanager_alert(
    e: AlertEvent, *, generator_url: str | None = None, firing_valid_ms: int | None = None
) -> dict[str, Any]:
    """One alert event as one Alertmanager v2 alert (see the module docstring)."""
    scope = "product" if e.product_id is not None else "category"
    window = _window_label(e.rule)
    labels = {"alertname": ALERTNAME, "rule": e.rule, "scope": scope, "window": window}
    labels["severity"] = e.severity
    if e.product_id is not None:
        labels["product_id"] = e.product_id
    if e.category is not None:
        labels["category"] = e.category

    share = e.negative / e.n if e.n else 0.0
    summary = (
        f"Negative reviews up for {_subject(e)}: {e.negative} of {e.n} ({share:.0%}) "
        f"in the {window} window, baseline {e.baseline_share:.0%}"
    )
    if e.status == "resolved":
        summary = f"Resolved: negative reviews back to baseline for {_subject(e)}"
    description = (
        f"{e.negative} negative of {e.n} reviews ({share:.1%}) from {iso_ms(e.window_start_ms)} "
        f"to {iso_ms(e.window_end_ms)}; baseline share {e.baseline_share:.1%} over "
        f"{e.baseline_n:.1f} decayed reviews; p = {e.p_value:.3g}. Episode since "
        f"{iso_ms(e.started_ms)}, {e.severity}. Model {e.model_name} {e.model_version}."
    )
    if e.product_ids:
        description += f" Products firing in the category: {', '.join(e.product_ids)}."
    annotations = {"summary": summary, "description": description, "alert_id": e.alert_id}
    if e.evidence:
        annotations["evidence"] = "\n".join(
            f"- {_excerpt(r.text)} [{r.event_id}, {r.score:.2f}]"
            for r in e.evidence[:EVIDENCE_SHOWN]
        )

    alert: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations,
        "startsAt": iso_ms(e.started_ms),
    }
    if e.status == "resolved":
        alert["endsAt"] = iso_ms(e.window_end_ms)
    elif firing_valid_ms is not None:
        alert["endsAt"] = iso_ms(e.window_end_ms + firing_valid_ms)
    if generator_url:
        alert["generatorURL"] = generator_url
    return alert


def alertmanager_alerts(
    events: Iterable[AlertEvent],
    *,
    generator_url: str | None = None,
    firing_valid_ms: int | None = None,
) -> list[dict[str, Any]]:
    """The ``POST /api/v2/alerts`` body for some alert events, in their order."""
    return [
        alertmanager_alert(e, generator_url=generator_url, firing_valid_ms=firing_valid_ms)
        for e in events
    ]


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


async def post_alerts(
    base_url: str,
    alerts: Sequence[dict[str, Any]],
    *,
    timeout_s: float = 5.0,
    attempts: int = 4,
    backoff_s: float = 0.5,
    max_backoff_s: float = 8.0,
    session: aiohttp.ClientSession | None = None,
) -> bool:
    """POST ``alerts`` to ``{base_url}/api/v2/alerts``; True once Alertmanager took them.

    Up to ``attempts`` tries, each limited to ``timeout_s``, sleeping
    ``backoff_s`` × 2^i (at most ``max_backoff_s``) between them; only
    connection errors, timeouts, 429 and 5xx are retried (a 400 will not get
    better). Never raises, except on cancellation: a failure is logged and
    False returned.
    """
    if not alerts:
        return True
    url = base_url.rstrip("/") + API_PATH
    own = session is None
    client = session or aiohttp.ClientSession()
    try:
        for attempt in range(1, attempts + 1):
            retry = True
            try:
                async with client.post(
                    url, json=list(alerts), timeout=aiohttp.ClientTimeout(total=timeout_s)
                ) as response:
                    if response.status < 300:
                        return True
                    body = (await response.text())[:500]
                    retry = _retryable(response.status)
                    problem = f"HTTP {response.status}: {body}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if not retry or attempt == attempts:
                log.error(
                    "alertmanager %s rejected or unreachable, %d alerts not sent after %d "
                    "attempt(s): %s",
                    url,
                    len(alerts),
                    attempt,
                    problem,
                )
                return False
            log.warning("alertmanager %s attempt %d failed: %s", url, attempt, problem)
            await asyncio.sleep(min(backoff_s * 2 ** (attempt - 1), max_backoff_s))
        return False
    except Exception:  # never let a notification failure reach the caller
        log.exception("alertmanager %s: unexpected error, %d alerts not sent", url, len(alerts))
        return False
    finally:
        if own:
            await client.close()

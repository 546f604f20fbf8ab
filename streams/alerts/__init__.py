"""Negative-review spike alerting: the sans-IO core (no Kafka, no store, no clock).

Per product and per category, each closed event-time window's negative count
is tested against the series' own decayed baseline with a beta-binomial
p-value (:mod:`.detector`, :mod:`.baseline`, :mod:`.tails`); windows over
threshold drive a Prometheus-like alert lifecycle (:mod:`.lifecycle`) whose
notifications are :class:`AlertEvent` records (:mod:`.event`). The engine
(:mod:`.engine`) ties them together; :mod:`.calibration` checks the
false-alert budget on simulated streams.
"""

from streams.alerts.detector import alert_alpha, alpha_for_budget, tarone_alpha
from streams.alerts.engine import AlertEngine, Evidence, WindowCount, run_alerts
from streams.alerts.event import AlertEvent, NegativeReview
from streams.alerts.settings import AlertSettings

__all__ = [
    "AlertEngine",
    "AlertEvent",
    "AlertSettings",
    "Evidence",
    "NegativeReview",
    "WindowCount",
    "alert_alpha",
    "alpha_for_budget",
    "run_alerts",
    "tarone_alpha",
]

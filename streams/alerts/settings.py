"""Settings of negative-review spike alerting (the ``alerts`` section).

Durations are spelled as everywhere else in the service (``1h``, ``24h``, see
:func:`streams.durations.parse_duration`). Counts of windows (resolve,
repeat) are counted per window size: two 1 h windows are two hours, two 24 h
windows two days; ``pending_for`` is a duration, as in Prometheus.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field, model_validator

from streams.durations import parse_duration

DAY = timedelta(days=1)


class AlertSettings(BaseModel):
    windows: list[str] = Field(
        ["1h", "24h"],
        min_length=1,
        description="tumbling event-time windows tested per product and per category; "
        "short ones catch busy products quickly, 24h gives slow sellers enough reviews",
    )
    history_days: int = Field(
        28, ge=1, description="past windows older than this leave a series' baseline"
    )
    half_life_days: float = Field(
        7.0, gt=0, description="a past window's weight in the baseline halves every this many days"
    )
    prior_strength: float = Field(
        10.0,
        gt=0,
        description="pseudo-reviews of the category's negative share in a product's baseline: "
        "it dominates a product with little history and fades as history accumulates",
    )
    min_negative: int = Field(3, ge=1, description="negative reviews a window needs to alert")
    effect_floor: float = Field(
        0.10,
        ge=0,
        le=1,
        description="the window's negative share must exceed the baseline share by this much",
    )
    false_alerts_per_day: float = Field(
        1.0,
        gt=0,
        description="budget of false alerts per day over all series; sets the per-test alpha "
        "(see streams.alerts.detector.tarone_alpha)",
    )
    critical_factor: float = Field(
        100.0, ge=1, description="p < alpha / critical_factor fires critical at once"
    )
    pending_for: str = Field(
        "2h",
        description="a warning fires once windows over threshold in a row span this much "
        "event time (Prometheus' `for`): two 1h windows; a 24h window spans it alone",
    )
    resolve_windows: int = Field(
        2, ge=1, description="consecutive windows back to baseline before an alert resolves"
    )
    repeat_windows: int = Field(
        4, ge=1, description="a firing alert is sent again every this many windows"
    )
    enabled: bool = Field(True, description="the worker tests windows and sends alerts")
    allowed_lateness: str = Field(
        "5m",
        description="a window closes once the latest review's event time passes its end by "
        "this much; later reviews still count in the aggregates but not in the closed window",
    )
    interval_s: float = Field(
        5.0, gt=0, description="how often the worker looks for closed windows"
    )
    max_windows_per_tick: int = Field(
        500, ge=1, description="windows tested per look; a backlog (a replay) takes several"
    )
    topic: str = Field("alerts", description="Kafka topic of alert events")
    alertmanager_url: str | None = Field(
        None, description="Alertmanager to post alerts to; not read by the sans-IO core"
    )

    @model_validator(mode="after")
    def _windows_fit_history(self) -> AlertSettings:
        parse_duration(self.allowed_lateness)
        parse_duration(self.pending_for)
        lengths = [parse_duration(w) for w in self.windows]
        if len(set(lengths)) != len(lengths):
            raise ValueError(f"alert windows {self.windows} repeat a length")
        if max(lengths) >= timedelta(days=self.history_days):
            raise ValueError("history_days must be longer than the longest alert window")
        return self

    def window_lengths_ms(self) -> dict[str, int]:
        """Each window's label (``1h``) and its length in milliseconds."""
        return {w: parse_duration(w) // timedelta(milliseconds=1) for w in self.windows}

    def allowed_lateness_ms(self) -> int:
        return parse_duration(self.allowed_lateness) // timedelta(milliseconds=1)

    def pending_windows(self, length_ms: int) -> int:
        """Windows of this length over threshold in a row before a warning: at least one."""
        pending_ms = parse_duration(self.pending_for) // timedelta(milliseconds=1)
        return max(1, -(-pending_ms // length_ms))

"""One alert's life, modelled on Prometheus' ``for`` and Alertmanager's repeat interval.

inactive → pending on a window over threshold → firing after
``pending`` windows over threshold in a row (a warning; the engine derives
it from ``pending_for`` and the window's length), or at once
when the window is critical → resolved after ``resolve_windows`` windows in a
row back under the threshold. An episode is one pass from pending to
resolved; it keeps one alert id, is sent again every ``repeat_windows``
windows while it fires, and again at once when it turns critical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from streams.alerts.settings import AlertSettings

State = Literal["inactive", "pending", "firing"]
Severity = Literal["warning", "critical"]
Status = Literal["firing", "resolved"]


@dataclass
class Lifecycle:
    """The alert state of one fingerprint (rule + product or category), one window at a time."""

    state: State = "inactive"
    severity: Severity = "warning"
    episode_start_ms: int = 0
    over_streak: int = 0
    calm_streak: int = 0
    since_sent: int = 0

    @property
    def in_alert(self) -> bool:
        """Pending or firing: the window just seen stays out of the baseline."""
        return self.state != "inactive"

    def advance(
        self,
        window_start_ms: int,
        over: bool,
        critical: bool,
        settings: AlertSettings,
        pending: int,
    ) -> Status | None:
        """Take one window's verdict; the status to send for it, if any."""
        if self.state == "inactive" and not over:
            return None
        if self.state == "pending":
            return self._pending(over, critical, pending)
        if self.state == "inactive":
            self.state, self.severity, self.episode_start_ms = "pending", "warning", window_start_ms
            self.over_streak = 0
            return self._pending(over, critical, pending)
        if over:
            self.calm_streak = 0
            if critical and self.severity == "warning":
                return self._send("critical")
        else:
            self.calm_streak += 1
            if self.calm_streak >= settings.resolve_windows:
                self.state = "inactive"
                return "resolved"
        self.since_sent += 1
        return self._send(self.severity) if self.since_sent >= settings.repeat_windows else None

    def _pending(self, over: bool, critical: bool, pending: int) -> Status | None:
        if not over:
            self.state = "inactive"
            return None
        self.over_streak += 1
        if critical or self.over_streak >= pending:
            self.state, self.calm_streak = "firing", 0
            return self._send("critical" if critical else "warning")
        return None

    def _send(self, severity: Severity) -> Status:
        self.severity, self.since_sent = severity, 0
        return "firing"

"""The alert state machine: pending, firing, reminders, escalation, resolution."""

from __future__ import annotations

from streams.alerts.lifecycle import Lifecycle
from streams.alerts.settings import AlertSettings

SETTINGS = AlertSettings(resolve_windows=2, repeat_windows=3)
PENDING = 2  # windows over in a row before a warning

# One character per window: '.' back to baseline, 'w' over threshold, 'c' critical.
Trace = list[tuple[str | None, str, str]]


def run(windows: str, life: Lifecycle | None = None) -> Trace:
    life = life or Lifecycle()
    trace: Trace = []
    for i, w in enumerate(windows):
        status = life.advance(
            i, over=w in "wc", critical=w == "c", settings=SETTINGS, pending=PENDING
        )
        trace.append((status, life.state, life.severity))
    return trace


def sent(windows: str) -> list[tuple[int, str, str]]:
    return [(i, s, sev) for i, (s, _, sev) in enumerate(run(windows)) if s]


def test_warning_after_two_windows_over_and_resolved_after_two_back() -> None:
    assert sent("ww..") == [(1, "firing", "warning"), (3, "resolved", "warning")]
    assert [state for _, state, _ in run("ww..")] == ["pending", "firing", "firing", "inactive"]


def test_one_window_over_stays_pending_and_then_quiet() -> None:
    assert sent("w.w.") == []
    assert [state for _, state, _ in run("w.")] == ["pending", "inactive"]


def test_critical_fires_at_once() -> None:
    assert sent("c..") == [(0, "firing", "critical"), (2, "resolved", "critical")]
    assert sent("wc") == [(1, "firing", "critical")]


def test_warning_escalates_to_critical_at_once() -> None:
    assert sent("wwc") == [(1, "firing", "warning"), (2, "firing", "critical")]


def test_firing_is_repeated_every_repeat_windows_until_resolved() -> None:
    assert sent("wwwww.w.w..") == [
        (1, "firing", "warning"),
        (4, "firing", "warning"),
        (7, "firing", "warning"),
        (10, "resolved", "warning"),
    ]


def test_one_window_back_does_not_resolve() -> None:
    assert sent("ww.w.w") == [(1, "firing", "warning"), (4, "firing", "warning")]


def test_an_episode_starts_at_its_first_pending_window() -> None:
    life = Lifecycle()
    run("..ww..", life)
    assert life.episode_start_ms == 2 and not life.in_alert
    run("w", life)
    assert life.in_alert and life.state == "pending"

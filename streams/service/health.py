"""What ``/healthz`` and ``/readyz`` report: agents alive, fatal stops, retries in progress.

Plain state, written by the agents and the sink on the event loop, read by
the web views. Live means the worker can make progress on its own (no agent
died, nothing fatal); ready additionally means no delivery is retrying.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Retrying:
    """A failure being retried: since when, how often, the last error."""

    since: float
    attempts: int = 0
    last_error: str = ""


@dataclass
class Health:
    agents: dict[str, str] = field(default_factory=dict)  # name → "running" or why it stopped
    fatal: str | None = None
    retrying: dict[str, Retrying] = field(default_factory=dict)  # "kafka" / "store"

    def agent_running(self, name: str) -> None:
        self.agents[name] = "running"

    def agent_stopped(self, name: str, why: str) -> None:
        self.agents[name] = why

    def halt(self, reason: str) -> None:
        """A failure no retry can fix: stop consuming; /healthz and /readyz answer 503."""
        self.fatal = self.fatal or reason

    def retry(self, what: str, error: str) -> int:
        """Count one failed attempt at ``what``; returns the attempts so far."""
        state = self.retrying.setdefault(what, Retrying(since=time.time()))
        state.attempts += 1
        state.last_error = error[:300]
        return state.attempts

    def recovered(self, what: str) -> None:
        self.retrying.pop(what, None)

    def problems(self) -> list[str]:
        """Why the worker is not live (empty when it is)."""
        found = [f"fatal: {self.fatal}"] if self.fatal else []
        found += [f"agent {n}: {why}" for n, why in self.agents.items() if why != "running"]
        return found

    def report(self) -> dict[str, Any]:
        return {
            "fatal": self.fatal,
            "agents": dict(self.agents),
            "retrying": {
                what: {
                    "since": round(r.since, 3),
                    "attempts": r.attempts,
                    "last_error": r.last_error,
                }
                for what, r in self.retrying.items()
            },
        }

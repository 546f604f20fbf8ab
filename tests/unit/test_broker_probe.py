"""The broker probe's bookkeeping: a failed metadata request makes /readyz unready,
the next answer makes it ready again (the real broker outage is in test_faults)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.service.broker_probe import WHAT, BrokerProbe
from streams.service.health import Health


@dataclass
class Cluster:
    """Answers list_topics from a script: a broker count, or an exception to raise."""

    answers: list[Any]
    timeouts: list[float] = field(default_factory=list)

    def list_topics(self, *, timeout: float) -> Any:
        self.timeouts.append(timeout)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return type("Metadata", (), {"brokers": dict.fromkeys(range(answer))})()


def test_outage_and_recovery() -> None:
    health = Health()
    cluster = Cluster([1, TimeoutError("no answer in 5 s"), RuntimeError("down"), 0, 3])
    probe = BrokerProbe(lambda: cluster, health, timeout_s=5)
    assert probe.check() and not health.retrying
    assert not probe.check()
    assert health.retrying[WHAT].attempts == 1
    assert "TimeoutError: no answer in 5 s" in health.retrying[WHAT].last_error
    assert not probe.check() and health.retrying[WHAT].attempts == 2
    assert not probe.check()  # a cluster without brokers is not reachable either
    assert "no brokers" in health.retrying[WHAT].last_error
    assert probe.check() and WHAT not in health.retrying
    assert cluster.timeouts == [5] * 5
    assert not health.problems()  # liveness never depends on the broker


def test_a_client_that_cannot_be_built_is_retried() -> None:
    health = Health()
    built: list[Cluster] = []

    def make() -> Cluster:
        if not built:
            built.append(Cluster([1]))
            raise ValueError("bad config")
        return built[0]

    probe = BrokerProbe(make, health, timeout_s=1)
    assert not probe.check() and "bad config" in health.retrying[WHAT].last_error
    assert probe.check() and not health.retrying

"""Whether the brokers answer, asked on a timer, for ``/readyz``.

A worker that has nothing to deliver never sees a send fail, so without a probe
it would stay "ready" through a broker outage until the next event arrived. The
probe asks the cluster for metadata through librdkafka's admin client (one
long-lived client, so it reconnects on its own), on a thread so the event loop
never blocks. A failed probe marks ``kafka-broker`` as retrying in
:class:`~streams.service.health.Health` (``/readyz`` answers 503); the next
successful one clears it. Liveness is unaffected: a broker outage is something
to wait out, not a reason to restart the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from streams.service.health import Health

log = logging.getLogger(__name__)

WHAT = "kafka-broker"


class MetadataClient(Protocol):
    def list_topics(self, *, timeout: float) -> Any: ...


class BrokerProbe:
    """One check per :meth:`check` call (blocking: run it on a thread)."""

    def __init__(
        self, client: Callable[[], MetadataClient], health: Health, timeout_s: float
    ) -> None:
        self._make_client = client
        self._client: MetadataClient | None = None
        self.health = health
        self.timeout_s = timeout_s

    def check(self) -> bool:
        try:
            if self._client is None:
                self._client = self._make_client()
            metadata = self._client.list_topics(timeout=self.timeout_s)
            if not metadata.brokers:
                raise RuntimeError("the cluster reports no brokers")
        except Exception as exc:
            attempts = self.health.retry(WHAT, f"{type(exc).__name__}: {exc}")
            if attempts == 1:
                log.warning("brokers not reachable: %s", exc)
            return False
        if WHAT in self.health.retrying:
            log.info("brokers reachable again")
        self.health.recovered(WHAT)
        return True


def admin_client(config: dict[str, str]) -> Callable[[], MetadataClient]:
    def make() -> MetadataClient:
        from confluent_kafka.admin import AdminClient

        client: MetadataClient = AdminClient({**config})
        return client

    return make

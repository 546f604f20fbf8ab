"""The ClickHouse store: one interface (:class:`Store`), two backends.

``chdb`` runs the ClickHouse engine in-process on a local data directory (the
default); ``clickhouse`` talks to a server through clickhouse-connect. Both
run the same DDL (``*.sql`` migrations here) and the same SQL.

Every event counts once, whatever a re-send changes
----------------------------------------------------

``event_id`` is the identity of an event across the whole store. When an
event is written more than once, **the version with the latest
``processed_at`` wins; between versions with the same ``processed_at``, the
one whose content hash is higher wins** (a 64-bit BLAKE2b of every stored
field but ``event_id`` and ``processed_at``). The winner is a function of the
set of versions written, not of their order, their batching, which worker
wrote them, or how often a write was cut short and redone. Raw counts
(``Store.count``, ``Store.event_ids``), ``reviews`` and ``questions`` read
with ``FINAL`` (one row per event id), ``product_health`` and all four
aggregate tables follow it: a re-send with another ``ts``, ``category`` or
``product_id`` moves the event to its new minute, hour, product and
category, and a re-send that loses (an older ``processed_at``) changes
nothing. :mod:`streams.store.rollup` says how the writes keep this exact.

Identity holds within the raw retention (``raw_ttl_days`` of event time): a
version whose earlier versions have all expired counts as a new event, and
aggregate cells older than the raw retention are not recomputed, so an
event moved out of one still counts there until the cell itself expires.

Modules: ``backend`` (the port both backends implement), ``embedded`` (chdb),
``server`` (clickhouse-connect), ``failures`` (their errors classified),
``migrations`` (schema and retention), ``store`` (:class:`Store`: writes and
queries), ``rollup`` (the write's SQL and Arrow steps), ``windows`` (rolling
windows); :func:`open_store` below picks the backend from settings.
"""

from __future__ import annotations

from streams.errors import StoreError
from streams.settings import StoreSettings
from streams.store.backend import Backend
from streams.store.store import Store

__all__ = ["Backend", "Store", "open_store"]


def open_store(settings: StoreSettings) -> Store:
    """The store for ``settings``: chdb on a local directory, or a ClickHouse server."""
    backend: Backend
    if settings.backend == "clickhouse":
        from streams.store.server import ServerBackend

        if not settings.url:
            raise StoreError("store backend 'clickhouse' needs store.url")
        backend = ServerBackend(
            settings.url, settings.user, settings.password.get_secret_value(), settings.database
        )
    else:
        from streams.store.embedded import ChdbBackend

        backend = ChdbBackend(settings.path)
    store = Store(backend, settings)
    store.migrate()
    return store

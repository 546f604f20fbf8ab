"""The ClickHouse store: one interface (:class:`Store`), two backends.

``chdb`` runs the ClickHouse engine in-process on a local data directory (the
default); ``clickhouse`` talks to a server through clickhouse-connect. Both
run the same DDL (``*.sql`` migrations here) and the same SQL.
"""

from streams.store.base import Backend, Store, open_store

__all__ = ["Backend", "Store", "open_store"]

"""Store failures are classified (transient, rejected rows, fatal) and never show credentials.

The backend tests run on chdb and on the server backend (see ``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from streams.errors import StoreError, StoreFatal, StoreRejected, StoreUnavailable
from streams.settings import StoreSettings
from streams.store import Store, open_store
from streams.store.failures import error_class, scrub, store_error
from streams.store.server import ServerBackend
from streams.tools.clickhouse_http import ChdbHTTPServer
from tests.unit.test_store import enriched


@pytest.fixture
def store(store_settings: StoreSettings) -> Iterator[Store]:
    s = open_store(store_settings)
    yield s
    s.close()


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectionRefusedError(111, "Connection refused"), StoreUnavailable),
        (TimeoutError("timed out"), StoreUnavailable),
        (PermissionError(13, "Permission denied"), StoreFatal),
        (RuntimeError("Code: 76. DB::Exception: Cannot lock file /d/status."), StoreUnavailable),
        (
            RuntimeError(
                "Code: 202. DB::Exception: Too many simultaneous queries. (TOO_MANY_SIM"
                "ULTANEOUS_QUERIES)"
            ),
            StoreUnavailable,
        ),
        (RuntimeError("Code: 241. DB::Exception: limit exceeded"), StoreUnavailable),
        (RuntimeError("Code: 6. DB::Exception: Cannot parse (CANNOT_PARSE_TEXT)"), StoreRejected),
        (pa.ArrowInvalid("Integer value 300 not in range"), StoreRejected),
        (pa.ArrowTypeError("expected str"), StoreRejected),
        (RuntimeError("Code: 516. DB::Exception: (AUTHENTICATION_FAILED)"), StoreFatal),
        (
            RuntimeError("Code: 497. DB::Exception: Not enough privileges. (ACCESS_DENIED)"),
            StoreFatal,
        ),
        (RuntimeError("Code: 194. DB::Exception: (REQUIRED_PASSWORD)"), StoreFatal),
        (RuntimeError("Code: 60. DB::Exception: Unknown table (UNKNOWN_TABLE)"), StoreFatal),
        (RuntimeError("Code: 47. DB::Exception: (UNKNOWN_IDENTIFIER)"), StoreError),
        (RuntimeError("something else"), StoreError),
    ],
)
def test_exceptions_are_classified(exc: BaseException, expected: type[StoreError]) -> None:
    assert error_class(exc) is expected
    assert type(store_error("chdb", exc)) is expected


def test_credentials_are_scrubbed() -> None:
    text = "no route to http://bob:s3cret@db:8123/?password=s3cret&x=1 (user bob, s3cret)"
    cleaned = scrub(text, ["s3cret"])
    assert "s3cret" not in cleaned and "bob:" not in cleaned
    assert "http://db:8123/" in cleaned


def test_unknown_tables_and_databases_are_fatal(store: Store) -> None:
    with pytest.raises(StoreFatal, match="UNKNOWN_TABLE"):
        store.backend.query(f"SELECT * FROM {store.db}.no_such_table")
    with pytest.raises(StoreFatal, match="UNKNOWN_DATABASE"):
        store.backend.command("INSERT INTO no_such_db.t VALUES (1)")


def test_bad_queries_stay_plain_store_errors(store: Store) -> None:
    with pytest.raises(StoreError) as raised:
        store.backend.query("SELECT no_such_column FROM system.one")
    assert type(raised.value) is StoreError


def test_values_the_store_cannot_take_are_rejected(store: Store) -> None:
    with pytest.raises(StoreRejected, match=r"CANNOT_PARSE_TEXT|Cannot parse"):
        store.backend.query("SELECT toUInt8('abc') AS n")
    with pytest.raises(StoreRejected, match="columns"):
        store.write([enriched(1, rating=300)])  # no UInt8
    assert store.count("reviews") == 0


def test_server_outage_is_transient(clickhouse_http: ChdbHTTPServer) -> None:
    backend = ServerBackend(clickhouse_http.url, "default", "", "rp_test")
    clickhouse_http.outage = True
    with pytest.raises(StoreUnavailable):
        backend.query("SELECT 1 AS one")
    clickhouse_http.outage = False
    assert backend.query("SELECT 1 AS one") == [{"one": 1}]
    backend.close()


def test_wrong_password_is_fatal_and_never_shown(clickhouse_http: ChdbHTTPServer) -> None:
    clickhouse_http.password = "right-one"
    url = clickhouse_http.url.replace("http://", "http://bob:wrong-one@")
    with pytest.raises(StoreFatal, match="AUTHENTICATION_FAILED") as raised:
        ServerBackend(url, "bob", "wrong-one", "rp_test")
    assert "wrong-one" not in str(raised.value) and "bob:" not in str(raised.value)
    assert "wrong-one" not in str(raised.value.__cause__ or "")

    backend = ServerBackend(url.replace("wrong-one", "right-one"), "bob", "right-one", "rp_test")
    clickhouse_http.outage = True
    with pytest.raises(StoreUnavailable) as down:
        backend.query("SELECT 1")
    assert "right-one" not in str(down.value) and "bob:" not in str(down.value)
    clickhouse_http.outage = False
    backend.close()

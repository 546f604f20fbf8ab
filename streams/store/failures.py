"""What a backend's exception means for the worker: one class of :class:`StoreError`.

Both backends pass every exception through :func:`store_error`:

- :class:`StoreUnavailable` (transient, retried): the connection was refused,
  reset or timed out (``OSError``, clickhouse-connect's ``OperationalError``),
  the server is busy or short of memory, another process holds the data
  directory's lock;
- :class:`StoreRejected` (permanent for those rows): the store refuses the
  data — a value it cannot parse, convert or fit (ClickHouse codes below,
  pyarrow's ``ArrowInvalid`` / ``ArrowTypeError``, clickhouse-connect's
  ``DataError``);
- :class:`StoreFatal` (permanent for the worker): authentication, permissions,
  or a schema that is not there (unknown database, table or column), a
  ``PermissionError``;
- plain :class:`StoreError` for everything else (a bad query, say).

ClickHouse names the error in its message, ``Code: 60. DB::Exception: …
(UNKNOWN_TABLE)``, through chdb and over HTTP alike; the name is matched
first, then the number. Messages never carry credentials: ``user:password@``
in URLs, ``password=`` parameters and the given secrets are masked, and an
exception whose text had to be masked is not chained.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pyarrow as pa

from streams.errors import StoreError, StoreFatal, StoreRejected, StoreUnavailable

TRANSIENT = {
    "TIMEOUT_EXCEEDED": 159,
    "TOO_MANY_SIMULTANEOUS_QUERIES": 202,
    "SOCKET_TIMEOUT": 209,
    "NETWORK_ERROR": 210,
    "MEMORY_LIMIT_EXCEEDED": 241,
    "TABLE_IS_READ_ONLY": 242,
    "TOO_MANY_PARTS": 252,
    "ALL_CONNECTION_TRIES_FAILED": 279,
    "QUERY_WAS_CANCELLED": 394,
    "CANNOT_SCHEDULE_TASK": 439,
    "KEEPER_EXCEPTION": 999,
}
REJECTED = {
    "CANNOT_PARSE_TEXT": 6,
    "CANNOT_PARSE_INPUT_ASSERTION_FAILED": 27,
    "CANNOT_PARSE_DATE": 38,
    "CANNOT_PARSE_DATETIME": 41,
    "TYPE_MISMATCH": 53,
    "ARGUMENT_OUT_OF_BOUND": 69,
    "CANNOT_CONVERT_TYPE": 70,
    "CANNOT_PARSE_NUMBER": 72,
    "INCORRECT_DATA": 117,
    "TOO_LARGE_STRING_SIZE": 131,
    "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE": 321,
    "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN": 349,
    "DECIMAL_OVERFLOW": 407,
}
FATAL = {
    "NO_SUCH_COLUMN_IN_TABLE": 16,
    "UNKNOWN_TABLE": 60,
    "UNKNOWN_DATABASE": 81,
    "READONLY": 164,
    "UNKNOWN_USER": 192,
    "WRONG_PASSWORD": 193,
    "REQUIRED_PASSWORD": 194,
    "IP_ADDRESS_NOT_ALLOWED": 195,
    "DATABASE_ACCESS_DENIED": 291,
    "ACCESS_DENIED": 497,
    "AUTHENTICATION_FAILED": 516,
}
# Transient failures ClickHouse reports without a code of their own.
TRANSIENT_TEXT = ("Cannot lock file", "Connection refused", "Connection reset", "timed out")

_CODE = re.compile(r"Code: (\d+)")
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]{2,})\)")
_USERINFO = re.compile(r"(\b[a-zA-Z][\w+.-]*://)[^/\s@]+@")
_PASSWORD_PARAM = re.compile(r"(password=)[^&\s'\"]+", re.IGNORECASE)
_TYPES: tuple[tuple[type[StoreError], tuple[type[BaseException], ...]], ...] = (
    (StoreFatal, (PermissionError,)),
    (StoreRejected, (pa.ArrowInvalid, pa.ArrowTypeError)),
    (StoreUnavailable, (OSError,)),
)
_CLASSES: tuple[tuple[type[StoreError], dict[str, int]], ...] = (
    (StoreFatal, FATAL),
    (StoreRejected, REJECTED),
    (StoreUnavailable, TRANSIENT),
)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without credentials: URL user info, ``password=`` values, ``secrets``."""
    text = _USERINFO.sub(r"\1", text)
    text = _PASSWORD_PARAM.sub(r"\1***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def error_class(exc: BaseException) -> type[StoreError]:
    """The class of store failure ``exc`` is (see the module docstring)."""
    if isinstance(exc, StoreError):
        return type(exc)
    for cls, types in _TYPES:
        if isinstance(exc, types):
            return cls
    kind = type(exc).__name__
    message = str(exc)
    names = set(_NAME.findall(message))
    codes = {int(c) for c in _CODE.findall(message)}
    found = [
        cls
        for matched in (names, codes)
        for cls, known in _CLASSES
        if matched & (set(known) | set(known.values()))
    ]
    if kind == "OperationalError":  # clickhouse-connect: the server could not be reached
        found.insert(0, StoreUnavailable)
    if kind == "DataError":  # clickhouse-connect could not serialize a value
        found.append(StoreRejected)
    if any(text in message for text in TRANSIENT_TEXT):
        found.append(StoreUnavailable)
    return found[0] if found else StoreError


def store_error(what: str, exc: BaseException, secrets: Iterable[str] = ()) -> StoreError:
    """``exc`` as the store error of its class, its message scrubbed of credentials.

    Raise it ``from`` :func:`cause` (``exc``, or None when the text held a secret).
    """
    secrets = tuple(secrets)
    text = scrub(f"{what}: {exc}", secrets)
    return error_class(exc)(text)


def cause(exc: BaseException, secrets: Iterable[str] = ()) -> BaseException | None:
    """``exc`` to chain to, or None when its text would show credentials."""
    text = str(exc)
    return exc if scrub(text, secrets) == text else None

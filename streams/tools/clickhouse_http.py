"""A ClickHouse HTTP endpoint served by chdb, so the server backend is tested for real.

No ClickHouse server can be installed where the tests run, but chdb is the
ClickHouse engine. This serves the part of the ClickHouse HTTP interface that
clickhouse-connect uses, with chdb executing every statement:

- ``POST /`` (and ``GET /``): the SQL is the ``query`` URL parameter followed
  by the body, or the body alone. ``INSERT INTO t (cols) FORMAT F`` followed by
  data (clickhouse-connect's ``insert_arrow`` sends an Arrow file in the body
  with the statement in ``query``) is executed as ``INSERT … SELECT * FROM
  file(…, F)`` on the spooled data.
- URL parameters: ``database`` (``USE``), ``default_format``, ``param_<name>``
  (server-side query parameters), transport parameters clickhouse-connect adds
  (``query_id``, ``session_id``, ``client_protocol_version`` …, ignored: one
  shared chdb session, plain Native), and every other parameter is a setting,
  applied with ``SET`` (an unknown one fails as it does on a server).
- Response headers: ``X-ClickHouse-Query-Id``, ``X-ClickHouse-Format``,
  ``X-ClickHouse-Timezone``, ``X-ClickHouse-Summary``; errors answer 500 with
  ``X-ClickHouse-Exception-Code`` and ClickHouse's message as the body.
- ``GET /ping`` → ``Ok.``

Authentication: any user is accepted unless ``password`` is set; then a request
whose Basic credentials (or ``X-ClickHouse-Key``) carry another password
answers 516 AUTHENTICATION_FAILED, as a server does.

Not served: compressed request bodies, external tables, sessions with their
own state.

Developer tooling for the tests and the benchmarks: the service never imports it.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# URL parameters that are not settings (ClickHouse's HTTP handler reserves them).
TRANSPORT_PARAMS = {
    "query",
    "database",
    "default_format",
    "query_id",
    "session_id",
    "session_timeout",
    "session_check",
    "compress",
    "decompress",
    "buffer_size",
    "client_protocol_version",
    "role",
    "quota_key",
    "user",
    "password",
    "wait_end_of_query",
}
INSERT_WITH_DATA = re.compile(
    rb"\s*INSERT\s+INTO\s+(?P<target>[\w.`\"]+\s*(?:\([^)]*\))?)"
    rb"\s*FORMAT\s+(?P<fmt>\w+)[ \t]*\r?\n?",
    re.IGNORECASE,
)
FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
ERROR_CODE = re.compile(r"Code: (\d+)\.")


class ChdbHTTPServer:
    """chdb behind a ClickHouse-compatible HTTP interface, on a free local port."""

    def __init__(self, path: Path) -> None:
        from chdb import session

        self.session = session.Session(str(path))
        self.lock = threading.Lock()  # one statement (with its SET/USE) at a time
        self.applied: dict[str, str] = {}  # settings and database now in effect
        self.outage = False  # True: drop every connection unanswered, as a dead server would
        self.password: str | None = None  # set: every request must carry it
        self.spool = Path(tempfile.mkdtemp(prefix="chdb-http-"))
        self.timezone = self.session.query("SELECT timezone()", "TSV").bytes().decode().strip()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join()
        with self.lock:
            self.session.close()
        shutil.rmtree(self.spool, ignore_errors=True)

    def execute(self, params: dict[str, str], body: bytes) -> tuple[bytes, dict[str, str]]:
        """Run one request's statement; returns the body and the X-ClickHouse headers."""
        sql = (params["query"].encode() + b"\n" + body) if "query" in params else body
        fmt = params.get("default_format", "TabSeparated")
        insert = INSERT_WITH_DATA.match(sql)
        spooled: Path | None = None
        if insert and sql[insert.end() :].strip():
            spooled = self.spool / uuid.uuid4().hex
            spooled.write_bytes(sql[insert.end() :])
            target, data_fmt = insert["target"].decode(), insert["fmt"].decode()
            text = f"INSERT INTO {target} SELECT * FROM file('{spooled}', '{data_fmt}')"
        else:
            text = sql.decode()
            found = FORMAT_CLAUSE.search(text)
            fmt = found[1] if found else fmt
        query_params = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        try:
            with self.lock:
                self._apply(params)
                result = self.session.query(text, fmt, params=query_params)
        finally:
            if spooled:
                spooled.unlink()
        summary = {
            "read_rows": str(result.rows_read()),
            "read_bytes": str(result.bytes_read()),
            "written_rows": str(result.rows_written()),
            "written_bytes": str(result.bytes_written()),
            "total_rows_to_read": str(result.rows_read()),
            "result_rows": "0",
            "result_bytes": str(len(result.bytes())),
            "elapsed_ns": str(int(result.elapsed() * 1e9)),
        }
        headers = {
            "X-ClickHouse-Query-Id": params.get("query_id") or str(uuid.uuid4()),
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Timezone": self.timezone,
            "X-ClickHouse-Summary": json.dumps(summary),
        }
        return result.bytes(), headers

    def _apply(self, params: dict[str, str]) -> None:
        """SET the request's settings and USE its database, where they changed."""
        wanted = {
            k: v
            for k, v in params.items()
            if k not in TRANSPORT_PARAMS and not k.startswith("param_")
        }
        wanted["database"] = params.get("database", "default")
        for name, value in wanted.items():
            if self.applied.get(name) == value:
                continue
            if not name.isidentifier():
                raise ValueError(f"Code: 115. DB::Exception: Unknown setting '{name}'")
            if name == "database":
                self.session.query(f"USE `{value}`")
            else:
                quoted = value.replace("\\", "\\\\").replace("'", "\\'")
                self.session.query(f"SET {name} = '{quoted}'")
            self.applied[name] = value


def _handler(server: ChdbHTTPServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: clickhouse-connect pools connections

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if server.outage:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if server.password is not None and self._password() != server.password:
                message = (
                    "Code: 516. DB::Exception: default: Authentication failed: password is"
                    " incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)\n"
                )
                self._reply(403, message.encode(), {"X-ClickHouse-Exception-Code": "516"})
                return
            if url.path == "/ping":
                self._reply(200, b"Ok.\n", {})
                return
            if self.headers.get("Content-Encoding"):
                self._reply(400, b"compressed request bodies are not served\n", {})
                return
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            try:
                data, headers = server.execute(params, body)
            except Exception as exc:  # chdb raises plain exceptions carrying ClickHouse's text
                message = str(exc)
                code = ERROR_CODE.search(message)
                headers = {"X-ClickHouse-Exception-Code": code[1] if code else "1000"}
                self._reply(500, message.encode() + b"\n", headers)
                return
            self._reply(200, data, headers)

        def _password(self) -> str:
            auth = self.headers.get("Authorization") or ""
            if auth.startswith("Basic "):
                return base64.b64decode(auth[6:]).decode().partition(":")[2]
            return self.headers.get("X-ClickHouse-Key") or ""

        def _reply(self, status: int, data: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest shows failures, not every request."""

    return Handler


@contextmanager
def chdb_http_server(path: Path) -> Iterator[ChdbHTTPServer]:
    """A started endpoint on ``path``; stopped (and its chdb session closed) on exit."""
    server = ChdbHTTPServer(path)
    server.start()
    try:
        yield server
    finally:
        server.stop()

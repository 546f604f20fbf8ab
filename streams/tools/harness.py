"""One harness for "a namespace on a broker + a worker subprocess".

The demo, the pipeline benchmark and the integration tests all run
``python -m streams worker`` against a broker, each in a namespace of its own:
topics prefixed with the namespace name, a consumer group (the app id) and a
data directory (chdb files, the worker's log), so runs never see each other's
data. :class:`Namespace` turns that into the worker's environment and into a
:class:`~streams.settings.Settings`; :class:`WorkerProcess` starts the worker
and reads its HTTP views.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streams.errors import WorkerExited, WorkerTimeout
from streams.settings import REPO_ROOT, Settings, StoreSettings
from streams.store import Store, open_store

TOPICS = ("reviews", "questions", "reviews.enriched", "questions.enriched", "deadletter")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Namespace:
    """Topics, consumer group, data directory and web port of one run."""

    name: str
    bootstrap: str
    data_dir: Path
    web_port: int

    def topic(self, base: str) -> str:
        return f"{self.name}.{base}"

    def env(self, **extra: str) -> dict[str, str]:
        """The worker's environment: the caller's, plus this namespace, plus ``extra``."""
        env = dict(os.environ)
        env.update(
            {
                "REVIEWPULSE_APP_ID": self.name,
                "REVIEWPULSE_DATA_DIR": str(self.data_dir),
                "REVIEWPULSE_KAFKA__BOOTSTRAP": self.bootstrap,
                "REVIEWPULSE_STORE__PATH": str(self.data_dir / "chdb"),
                "REVIEWPULSE_WEB__PORT": str(self.web_port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        for base in TOPICS:
            field = base.replace(".", "_").upper()
            env[f"REVIEWPULSE_KAFKA__TOPICS__{field}"] = self.topic(base)
        env["REVIEWPULSE_ALERTS__TOPIC"] = self.topic("alerts")
        env.update(extra)
        return env

    def settings(self, **extra: str) -> Settings:
        """The settings the worker started with ``env(**extra)`` reads."""
        return Settings(_env_file=None, **_nested(self.env(**extra)))

    def open_store(self) -> Store:
        """The namespace's embedded store (only once its worker stopped: chdb is one process)."""
        return open_store(StoreSettings(path=self.data_dir / "chdb"))


def _nested(env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith("REVIEWPULSE_"):
            continue
        parts = key.removeprefix("REVIEWPULSE_").lower().split("__")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _cpu_list(text: str) -> set[int]:
    """``0-2,5`` → {0, 1, 2, 5}."""
    out: set[int] = set()
    for part in text.strip().split(","):
        first, _, last = part.partition("-")
        out.update(range(int(first), int(last or first) + 1))
    return out


class WorkerProcess:
    """``python -m streams worker`` in a child process, logging to the namespace's directory.

    Several workers of one namespace form one consumer group; give each its own
    ``web_port`` (the namespace's by default). The worker runs in a session of
    its own: a Ctrl-C at the terminal reaches only the parent, which stops it
    with :meth:`stop`.
    """

    def __init__(self, ns: Namespace, *, web_port: int | None = None, **env: str) -> None:
        self.ns = ns
        self.web_port = web_port or ns.web_port
        ns.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = ns.data_dir / f"worker-{time.monotonic_ns()}.log"
        env = {"REVIEWPULSE_WEB__PORT": str(self.web_port), **env}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams", "worker"],
                env=ns.env(**env),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                start_new_session=True,
            )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def get(self, path: str) -> Any:
        """A JSON view; a 503 (``/readyz``, ``/healthz``) still returns its body."""
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=5) as response:
                return orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            return orjson.loads(exc.read())

    def wait_until(
        self, check: Callable[[], Any], timeout_s: float, what: str, poll_s: float = 0.5
    ) -> Any:
        """Poll ``check`` until it returns something truthy, and return that.

        Raises :class:`~streams.errors.WorkerExited` if the worker ends first and
        :class:`~streams.errors.WorkerTimeout` after ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                result = check()
                if result:
                    return result
            except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError):
                pass
            time.sleep(poll_s)
        raise WorkerTimeout(f"worker not {what} after {timeout_s:.0f}s:\n{self.log_tail()}")

    def check_alive(self) -> None:
        """:class:`~streams.errors.WorkerExited`, with the log's tail, if the worker ended."""
        if self.proc.poll() is not None:
            raise WorkerExited(
                f"worker exited ({self.proc.returncode}); log {self.log_path}:\n" + self.log_tail()
            )

    def wait_ready(self, timeout_s: float = 180) -> None:
        self.wait_until(lambda: bool(self.get("/readyz")["ready"]), timeout_s, "ready")

    def metrics(self) -> dict[str, Any]:
        """The worker's counters as JSON (``/metrics.json``)."""
        loaded: dict[str, Any] = self.get("/metrics.json")
        return loaded

    def get_text(self, path: str) -> tuple[str, str]:
        """A plain view (``/metrics``): its content type and body."""
        with urllib.request.urlopen(self.base_url + path, timeout=5) as response:
            return response.headers["Content-Type"], response.read().decode()

    def processed(self) -> int:
        """Events enriched or dead-lettered so far (not necessarily stored yet)."""
        m = self.metrics()
        return int(sum(m["processed"].values()) + sum(m["dead_letters"].values()))

    def stored(self) -> int:
        return int(sum(self.metrics()["stored"].values()))

    def settled(self) -> bool:
        """Every event this worker processed is in the store (no batch in flight)."""
        m = self.metrics()
        return bool(0 < sum(m["processed"].values()) == sum(m["stored"].values()))

    def pin(self, cpus: set[int]) -> None:
        """Pin the worker to ``cpus``; call it right after the start.

        Popen returns once the child exec'd the interpreter, which starts no
        thread until the worker's imports run (a second or more later), so every
        thread (onnxruntime's, the web and store pools) inherits the mask.
        """
        os.sched_setaffinity(self.proc.pid, cpus)

    def cpu_seconds(self) -> float:
        """CPU time the worker used so far, all threads, user and system (from /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def cpus(self) -> list[int]:
        """The cores any of the worker's threads may run on (from /proc)."""
        allowed: set[int] = set()
        for status in Path(f"/proc/{self.proc.pid}/task").glob("*/status"):
            try:
                lines = status.read_text().splitlines()
            except OSError:  # the thread ended meanwhile
                continue
            for line in lines:
                if line.startswith("Cpus_allowed_list:"):
                    allowed |= _cpu_list(line.split(":", 1)[1])
        return sorted(allowed)

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM, then SIGKILL after ``timeout_s``; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit."""
        self.proc.kill()
        self.proc.wait()

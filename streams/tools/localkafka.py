"""A single-node Apache Kafka broker (KRaft, no ZooKeeper) for the demo, the tests and CI.

The broker jars come from Maven Central through ``deploy/kafka/pom.xml`` (so
this needs a source checkout, e.g. ``pip install -e .``), Java 17+ and Maven::

    kafka = LocalKafka(Path(".reviewpulse/kafka"), port=9092)
    kafka.start()               # fetches jars once, formats storage once, waits until ready
    ...                         # bootstrap servers: kafka.bootstrap_servers
    kafka.stop()

Everything lives under ``home``: ``jars/<version>/`` (unless ``jars_root`` puts
the jars elsewhere, e.g. to share them between test runs), ``data/`` (the KRaft
log dir), ``server.properties``, ``log4j2.properties``, ``broker.log`` and
``broker.pid``. The broker listens on 127.0.0.1 only and outlives the Python
process that started it until ``stop()``. Start-up times: deploy/kafka/README.md.

With ``sasl_users={"name": "password"}`` the broker gets a second listener,
SASL_PLAINTEXT on ``sasl_port``, that accepts those users with PLAIN,
SCRAM-SHA-256 and SCRAM-SHA-512 (to test the clients' security settings; the
PLAINTEXT listener stays, for the readiness check and inter-broker traffic)::

    kafka = LocalKafka(home, port=9092, sasl_port=9094, sasl_users={"app": "secret"})
    kafka.sasl_bootstrap_servers  # "127.0.0.1:9094"
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from streams.errors import LocalKafkaError
from streams.settings import REPO_ROOT

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.4.0"
POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"

# After bin/kafka-run-class.sh, with a heap small enough for a shared 2-core machine.
# TieredStopAtLevel=1 (C1 JIT only) makes start-up much faster on a busy 2-core machine.
JVM_FLAGS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)

LOG4J2_PROPERTIES = """\
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
"""

_POLL_S = 0.2
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_SCRAM_ITERATIONS = 4096
_LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class KafkaStatus:
    """What ``LocalKafka.status()`` found: ``running`` means this home's broker process is alive."""

    running: bool
    pid: int | None
    port: int
    version: str
    home: Path


@dataclass(frozen=True)
class LocalKafka:
    """One broker+controller node whose state lives in ``home``."""

    home: Path
    port: int = 9092
    controller_port: int | None = None  # default: port + 1
    num_partitions: int = 1  # for auto-created topics
    version: str = KAFKA_VERSION
    jars_root: Path | None = None  # holds <version>/ with the jars; default: home / "jars"
    # name → password; non-empty adds the SASL_PLAINTEXT listener (never in repr)
    sasl_users: Mapping[str, str] = field(default_factory=dict, repr=False, hash=False)
    sasl_port: int | None = None  # default: port + 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", self.home.resolve())
        object.__setattr__(self, "sasl_users", dict(self.sasl_users))
        for name, password in self.sasl_users.items():
            if not name or not all(c.isalnum() or c in "-_." for c in name):
                raise ValueError(f"SASL user name {name!r}: use letters, digits, '-', '_', '.'")
            # It goes into a quoted JAAS option inside a .properties file.
            if not password or not password.isprintable() or '"' in password or "\\" in password:
                raise ValueError(
                    f"SASL user {name!r}: the password must be printable, no '\"' or '\\'"
                )

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap_servers(self) -> str:
        """The SASL_PLAINTEXT listener's address (only when ``sasl_users`` is set)."""
        if not self.sasl_users:
            raise LocalKafkaError("this broker has no SASL listener: pass sasl_users")
        return f"127.0.0.1:{self._sasl_port}"

    def fetch_jars(self) -> Path:
        """Return the directory holding the broker jars, running Maven if it is not there yet."""
        jars = (self.jars_root or self.home / "jars").resolve() / self.version
        if jars.is_dir():
            return jars
        if not POM.is_file():
            raise LocalKafkaError(f"{POM} not found: LocalKafka needs a source checkout")
        mvn = shutil.which("mvn")
        if mvn is None:
            raise LocalKafkaError("Maven (mvn) is not on PATH: it is needed to fetch Kafka")
        partial = jars.with_name(f"{self.version}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        log.info("fetching Kafka %s jars into %s", self.version, jars)
        command = [
            mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM), "dependency:copy-dependencies",
            f"-Dkafka.version={self.version}", f"-DoutputDirectory={partial}",
        ]  # fmt: skip
        _run(command, "fetching the Kafka jars")
        partial.rename(jars)
        return jars

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the broker unless it already runs, and wait until it answers metadata requests.

        ``timeout_s`` bounds that wait, not the one-time jar download and storage format.
        """
        pid = self._running_pid()
        if pid is None:
            self._check_ports_free()
            jars = self.fetch_jars()
            self._write_config()
            self._format_storage(jars)
            process = self._launch(jars)
            pid = process.pid
            try:
                self._wait_until_ready(lambda: process.poll() is None, timeout_s)
                self._add_scram_users(timeout_s)
            except LocalKafkaError:
                self.stop()
                raise
        else:
            self._wait_until_ready(lambda: self._running_pid() == pid, timeout_s)
        log.info("Kafka %s ready on %s (pid %d)", self.version, self.bootstrap_servers, pid)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after ``timeout_s``; no-op if not running."""
        pid = self._running_pid()
        if pid is not None:
            log.info("stopping Kafka (pid %d)", pid)
            os.kill(pid, signal.SIGTERM)
            if not self._wait_for_exit(pid, timeout_s):
                log.warning("Kafka (pid %d) ignored SIGTERM for %.0f s: killing it", pid, timeout_s)
                os.kill(pid, signal.SIGKILL)
                self._wait_for_exit(pid, timeout_s)
        self._pid_file.unlink(missing_ok=True)

    def status(self) -> KafkaStatus:
        pid = self._running_pid()
        return KafkaStatus(pid is not None, pid, self.port, self.version, self.home)

    @property
    def _controller_port(self) -> int:
        return self.controller_port or self.port + 1

    @property
    def _sasl_port(self) -> int:
        return self.sasl_port or self.port + 2

    @property
    def _pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def _log_file(self) -> Path:
        return self.home / "broker.log"

    @property
    def _server_properties(self) -> Path:
        return self.home / "server.properties"

    @property
    def _log4j2_properties(self) -> Path:
        return self.home / "log4j2.properties"

    @property
    def _data_dir(self) -> Path:
        return self.home / "data"

    def _java_command(self, jars: Path, cds_flag: str, main_class: str, *args: str) -> list[str]:
        return [
            _java(), *JVM_FLAGS, cds_flag, f"-Dlog4j2.configurationFile={self._log4j2_properties}",
            "-cp", str(jars / "*"), main_class, *args,
        ]  # fmt: skip

    def _check_ports_free(self) -> None:
        ports = [self.port, self._controller_port]
        if self.sasl_users:
            ports.append(self._sasl_port)
        for port in ports:
            if _accepts_connections(port, timeout_s=1.0):
                raise LocalKafkaError(f"127.0.0.1:{port} is already in use by another process")

    def _write_config(self) -> None:
        controller_port = self._controller_port
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            **self._sasl_config(),  # replaces the three listener settings above
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self._data_dir),
            "num.partitions": str(self.num_partitions),
            "auto.create.topics.enable": "true",
            "group.initial.rebalance.delay.ms": "0",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
        }
        self.home.mkdir(parents=True, exist_ok=True)
        # It may hold the SASL users' passwords: readable by this user only.
        self._server_properties.touch(mode=0o600)
        self._server_properties.chmod(0o600)
        self._server_properties.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        self._log4j2_properties.write_text(LOG4J2_PROPERTIES)

    def _sasl_config(self) -> dict[str, str]:
        """Broker settings for the SASL_PLAINTEXT listener, or {} without SASL users."""
        if not self.sasl_users:
            return {}
        prefix = "listener.name.sasl_plaintext"
        plain_users = " ".join(f'user_{name}="{pw}"' for name, pw in self.sasl_users.items())
        return {
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},SASL_PLAINTEXT://127.0.0.1:{self._sasl_port},"
                f"CONTROLLER://127.0.0.1:{self._controller_port}"
            ),
            "advertised.listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},SASL_PLAINTEXT://127.0.0.1:{self._sasl_port}"
            ),
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            f"{prefix}.sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
            f"{prefix}.plain.sasl.jaas.config": (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
            ),
            **{
                f"{prefix}.{mechanism.lower()}.sasl.jaas.config": (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                )
                for mechanism in SASL_MECHANISMS[1:]
            },
        }

    def _add_scram_users(self, timeout_s: float) -> None:
        """Store the SASL users' SCRAM credentials in the cluster metadata (admin API).

        Done through the PLAINTEXT listener, so no password appears on a command line.
        """
        if not self.sasl_users:
            return
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        # One request per mechanism: a request may alter each user only once.
        for mechanism in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512):
            upserts: list[UserScramCredentialAlteration] = [
                UserScramCredentialUpsertion(
                    name, ScramCredentialInfo(mechanism, _SCRAM_ITERATIONS), password.encode()
                )
                for name, password in self.sasl_users.items()
            ]
            for name, future in admin.alter_user_scram_credentials(upserts).items():
                try:
                    future.result(timeout=timeout_s)
                except KafkaException as exc:
                    raise LocalKafkaError(
                        f"cannot add {mechanism.name} credentials for {name}: {exc}"
                    ) from exc

    def _format_storage(self, jars: Path) -> None:
        if (self._data_dir / "meta.properties").is_file():
            return
        log.info("formatting Kafka storage in %s", self._data_dir)
        command = self._java_command(
            jars, _class_sharing(jars, record=False), "kafka.tools.StorageTool", "format",
            "--cluster-id", _random_cluster_id(), "--config", str(self._server_properties),
        )  # fmt: skip
        _run(command, "formatting the Kafka storage")

    def _launch(self, jars: Path) -> subprocess.Popen[bytes]:
        cds_flag = _class_sharing(jars, record=True)
        command = self._java_command(jars, cds_flag, "kafka.Kafka", str(self._server_properties))
        with self._log_file.open("wb") as broker_log:
            process = subprocess.Popen(
                command,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=broker_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._pid_file.write_text(f"{process.pid}\n")
        log.info("started Kafka %s (pid %d), log: %s", self.version, process.pid, self._log_file)
        return process

    def _running_pid(self) -> int | None:
        """The pid of this home's broker if that process is alive, else None."""
        try:
            pid = int(self._pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if str(self._server_properties) in _command_line(pid) else None

    def _wait_until_ready(self, alive: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not alive():
                raise LocalKafkaError(f"Kafka exited while starting.\n{self._log_excerpt()}")
            if self._answers_metadata(min(2.0, max(deadline - time.monotonic(), 0.1))):
                return
            time.sleep(_POLL_S)
        raise LocalKafkaError(
            f"Kafka did not answer on {self.bootstrap_servers} in time.\n{self._log_excerpt()}"
        )

    def _answers_metadata(self, timeout_s: float) -> bool:
        # Probe the socket first: librdkafka logs every refused connection.
        if not _accepts_connections(self.port, timeout_s):
            return False
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        try:
            return bool(admin.list_topics(timeout=timeout_s).brokers)
        except KafkaException:  # not ready yet
            return False

    def _wait_for_exit(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._running_pid() != pid:
                return True
            time.sleep(_POLL_S)
        return False

    def _log_excerpt(self) -> str:
        """The first ERROR of broker.log (usually the cause) and its last lines."""
        try:
            lines = self._log_file.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return f"({self._log_file} is missing)"
        first_error = next((i for i, line in enumerate(lines) if " ERROR " in line), len(lines))
        return "\n".join(
            [
                f"First error in {self._log_file}:",
                *lines[first_error : first_error + 3],
                f"Last lines of {self._log_file}:",
                *lines[-_LOG_TAIL_LINES:],
            ]
        )


def _accepts_connections(port: int, timeout_s: float) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if java is None or not Path(java).is_file():
        raise LocalKafkaError("no Java found: set JAVA_HOME or put java (17+) on PATH")
    return java


def _class_sharing(jars: Path, *, record: bool) -> str:
    """The JVM flag that maps the broker's class-data archive, or records it at exit if missing.

    The first broker run per jars directory writes ``kafka.jsa`` when it stops;
    later JVMs start about 40% faster with it (and ignore it if it does not fit).
    """
    archive = jars / "kafka.jsa"
    if archive.is_file():
        return f"-XX:SharedArchiveFile={archive}"
    return f"-XX:ArchiveClassesAtExit={archive}" if record else "-Xshare:auto"


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).splitlines()[-_LOG_TAIL_LINES:]
        raise LocalKafkaError(f"{what} failed (exit {result.returncode}):\n" + "\n".join(output))


def _random_cluster_id() -> str:
    """16 random bytes in unpadded URL-safe base64, not starting with '-' (like kafka-storage)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _command_line(pid: int) -> str:
    """The command line of a live process, or '' (also for zombies)."""
    if Path("/proc/self/cmdline").exists():
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return ""
        return raw.replace(b"\0", b" ").decode(errors="replace")
    command = ["ps", "-o", "args=", "-p", str(pid)]
    return subprocess.run(command, capture_output=True, text=True, check=False).stdout

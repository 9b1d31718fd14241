"""A real single-node Apache Kafka broker (KRaft, combined broker + controller) on loopback.

The broker's jars come from Maven Central through ``deploy/kafka/pom.xml`` (see
:func:`resolve_jars`); the broker runs as ``java -cp deploy/kafka/lib/* kafka.Kafka`` in its own
process group, with its configuration, pid file, log and data under one data directory.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from confluent_kafka.admin import AdminClient

from touchstone.errors import BrokerError

__all__ = [
    "KAFKA_DIR",
    "DEFAULT_DATA_DIR",
    "BrokerStatus",
    "LocalBroker",
    "resolve_jars",
    "kafka_version",
    "is_reachable",
    "free_port",
]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_DIR = REPO_ROOT / "deploy" / "kafka"
DEFAULT_DATA_DIR = REPO_ROOT / ".run" / "kafka"
MIN_JAVA = 17  # Kafka 4 brokers need Java 17+
_STAMP = ".pom.sha256"
_INSTALL_HINT = "install a JDK 17+ and Maven (Debian: apt-get install openjdk-17-jdk-headless maven)"


# --- jars -------------------------------------------------------------------------------------


def _pom_digest(kafka_dir: Path) -> str:
    return hashlib.sha256((kafka_dir / "pom.xml").read_bytes()).hexdigest()


def _jars_current(kafka_dir: Path) -> bool:
    stamp = kafka_dir / "lib" / _STAMP
    return stamp.is_file() and stamp.read_text().strip() == _pom_digest(kafka_dir)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # Two test sessions or CLIs resolving at once must not interleave their copies into lib/.
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_maven(kafka_dir: Path, output: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(f"Maven (mvn) is not on PATH; it fetches the Kafka jars: {_INSTALL_HINT}")
    cmd = [
        mvn, "-q", "-B", "-f", str(kafka_dir / "pom.xml"),
        "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={output}",
    ]  # fmt: skip
    log.info("resolving Kafka jars with Maven into %s", kafka_dir / "lib")
    proc = subprocess.run(cmd, cwd=kafka_dir, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stdout + proc.stderr).strip()[-2000:]
        raise BrokerError(f"mvn failed (exit {proc.returncode}) resolving {kafka_dir / 'pom.xml'}:\n{detail}")


def resolve_jars(kafka_dir: Path = KAFKA_DIR, *, force: bool = False) -> Path:
    """Return ``kafka_dir/lib``, filling it with Maven first if it is missing or the pom changed.

    The copy goes to a staging directory and replaces ``lib`` whole, so a Kafka version change
    never leaves two versions' jars on one classpath. Raises :class:`BrokerError` without Java or
    Maven, saying what to install.
    """
    java_executable()  # fail on a missing/old Java before spending time in Maven
    lib = kafka_dir / "lib"
    if not force and _jars_current(kafka_dir):
        return lib
    with _file_lock(kafka_dir / "target" / "resolve.lock"):
        if not force and _jars_current(kafka_dir):
            return lib  # another process resolved while we waited
        staging = kafka_dir / "target" / "lib-staging"
        shutil.rmtree(staging, ignore_errors=True)
        started = time.monotonic()
        _run_maven(kafka_dir, staging)
        (staging / _STAMP).write_text(_pom_digest(kafka_dir) + "\n")
        shutil.rmtree(lib, ignore_errors=True)
        staging.rename(lib)
        log.info("Kafka jars resolved in %.1fs (Kafka %s)", time.monotonic() - started, kafka_version(lib))
    return lib


def kafka_version(lib: Path) -> str | None:
    """Kafka version of the broker jar in ``lib`` (``kafka_2.13-X.jar``), or None."""
    for jar in lib.glob("kafka_2.*-*.jar"):
        match = re.fullmatch(r"kafka_2\.\d+-(.+)\.jar", jar.name)
        if match:
            return match.group(1)
    return None


def java_executable() -> str:
    """Path of a Java 17+ ``java`` (``$JAVA_HOME/bin/java`` first, then PATH)."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else None
    java = java or shutil.which("java")
    if java is None:
        raise BrokerError(f"java is not on PATH; the Kafka broker runs on the JVM: {_INSTALL_HINT}")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(match.group(1)) if match else 0
    major = int(match.group(2) or 0) if major == 1 and match else major  # "1.8" style
    if major < MIN_JAVA:
        raise BrokerError(f"{java} is Java {major or '?'}; Kafka 4 needs Java {MIN_JAVA}+: {_INSTALL_HINT}")
    return java


# --- probing ----------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _split(bootstrap: str) -> tuple[str, int]:
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    return host or "127.0.0.1", int(port)


def quiet_logger() -> logging.Logger:
    # librdkafka logs every refused connection at ERROR; probing a down broker is not an error.
    quiet = logging.getLogger("touchstone.kafka.librdkafka")
    quiet.setLevel(logging.CRITICAL)
    return quiet


def admin_client(bootstrap: str) -> AdminClient:
    """A confluent-kafka AdminClient that stays quiet while the broker is down."""
    return AdminClient({"bootstrap.servers": bootstrap, "logger": quiet_logger(), "socket.timeout.ms": 5000})


def is_reachable(bootstrap: str, timeout: float = 3.0) -> bool:
    """True when a Kafka broker at ``bootstrap`` answers a metadata request with itself in it."""
    host, port = _split(bootstrap)
    if not _port_open(host, port):
        return False
    try:
        metadata = admin_client(bootstrap).list_topics(timeout=timeout)
    except Exception:  # KafkaException on timeout; anything else means "not a usable broker" too
        return False
    return bool(metadata.brokers)


# --- process handling -------------------------------------------------------------------------


def _stat(path: str) -> tuple[str, int] | None:
    """(state, process group) from ``/proc/<path>/stat``, or None when it is gone."""
    try:
        fields_ = Path(f"/proc/{path}/stat").read_text().rsplit(")", 1)[1].split()
        return fields_[0], int(fields_[2])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """True while any thread of ``pid`` runs. The main thread of a JVM can be a zombie while its
    shutdown hooks still run, so the process's own state is not enough."""
    try:
        threads = [entry.name for entry in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return False
    return any((stat := _stat(f"{pid}/task/{tid}")) is not None and stat[0] != "Z" for tid in threads)


def _group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(entry.name)
            if stat is not None and stat[1] == pgid and _alive(int(entry.name)):
                members.append(int(entry.name))
    return members


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _cluster_id() -> str:
    # Kafka's Uuid text form: URL-safe base64 of 16 random bytes, unpadded. Like Kafka, never start
    # with "-", which command-line parsers read as an option.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass(frozen=True)
class BrokerStatus:
    """What :meth:`LocalBroker.status` found."""

    running: bool  # a broker process started from this data dir is alive
    reachable: bool  # something answers Kafka metadata requests on the port
    pid: int | None
    port: int
    controller_port: int
    bootstrap: str
    version: str | None
    data_dir: Path
    log_file: Path
    reused: bool = False  # start() found a broker already answering and did not launch one


@dataclass
class LocalBroker:
    """One Kafka broker process on ``host:port`` with its state under ``data_dir``.

    >>> broker = LocalBroker(port=9092)  # doctest: +SKIP
    >>> broker.start().bootstrap          # doctest: +SKIP
    '127.0.0.1:9092'
    """

    port: int = 9092
    controller_port: int = 9093
    data_dir: Path = DEFAULT_DATA_DIR
    host: str = "127.0.0.1"
    heap: str = "512m"
    kafka_dir: Path = KAFKA_DIR
    extra_config: Mapping[str, str] = field(default_factory=dict)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self.kafka_dir = Path(self.kafka_dir)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "logs"

    # --- public lifecycle ---

    def start(self, wait: bool = True, timeout: float = 90.0) -> BrokerStatus:
        """Start the broker (or reuse one already answering on the port) and return its status.

        With ``wait`` it returns once a metadata request answers, else raises :class:`BrokerError`
        with the tail of the broker log (the process is then stopped).
        """
        if is_reachable(self.bootstrap):
            log.info("a Kafka broker already answers on %s; reusing it", self.bootstrap)
            return self._status(reused=True)
        pid = self._read_pid()
        if pid is not None and self._owns(pid):
            self._check_same_ports()
            log.info("broker pid %d from %s is still starting; waiting for it", pid, self.data_dir)
        else:
            self._launch()
        if wait:
            self.wait_ready(timeout)
        return self._status()

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Block until the broker answers a metadata request; BrokerError if it dies or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if is_reachable(self.bootstrap, timeout=2.0):
                return
            pid = self._read_pid()
            if pid is None or not _alive(pid):
                self._reap()
                raise BrokerError(
                    f"Kafka broker exited during startup; {self.log_file} ends with:\n{_tail(self.log_file)}"
                )
            time.sleep(0.25)
        self.stop()
        raise BrokerError(
            f"Kafka broker did not answer on {self.bootstrap} within {timeout:.0f}s; "
            f"{self.log_file} ends with:\n{_tail(self.log_file)}"
        )

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker started from this data dir: SIGTERM its process group, SIGKILL after
        ``timeout``. Returns False when there was nothing of ours to stop (a reused broker that
        someone else started is left alone)."""
        pid = self._read_pid()
        if pid is None or not self._owns(pid):
            self.pid_file.unlink(missing_ok=True)
            self._reap()
            if is_reachable(self.bootstrap):
                log.warning(
                    "the broker on %s was not started from %s; leaving it running", self.bootstrap, self.data_dir
                )
            return False
        log.info("stopping Kafka broker pid %d", pid)
        self._signal_group(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout):
            log.warning("broker pid %d ignored SIGTERM for %.0fs; killing it", pid, timeout)
            self._signal_group(pid, signal.SIGKILL)
            if not self._wait_gone(pid, 10.0):
                raise BrokerError(f"Kafka broker pid {pid} survived SIGKILL")
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> BrokerStatus:
        return self._status()

    # --- internals ---

    def render_config(self) -> str:
        template = Template((self.kafka_dir / "server.properties.template").read_text())
        text = template.substitute(
            host=self.host, port=self.port, controller_port=self.controller_port, log_dirs=self.log_dirs
        )
        extra = "".join(f"{key}={value}\n" for key, value in self.extra_config.items())
        return text + ("\n# extra_config\n" + extra if extra else "")

    def _launch(self) -> None:
        self._check_ports_free()
        lib = resolve_jars(self.kafka_dir)
        java = java_executable()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.render_config())
        self._format_storage(java, lib)
        if self.log_file.exists():  # keep one previous run's log, not an ever-growing file
            self.log_file.replace(self.log_file.with_suffix(".log.1"))
        cmd = [java, *self._jvm_options(), "-cp", str(lib / "*"), "kafka.Kafka", str(self.config_file)]
        with self.log_file.open("wb") as out:
            # Own session = own process group: stop() can signal the JVM and anything it forks,
            # and a Ctrl-C aimed at the CLI does not take the broker down with it.
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.data_dir, start_new_session=True,
            )  # fmt: skip
        record = {
            "pid": self._proc.pid,
            "port": self.port,
            "controller_port": self.controller_port,
            "version": kafka_version(lib),
            "config": str(self.config_file),
        }
        self.pid_file.write_text(json.dumps(record) + "\n")
        log.info(
            "started Kafka %s pid %d on %s (log %s)", record["version"], self._proc.pid, self.bootstrap, self.log_file
        )

    def _jvm_options(self) -> list[str]:
        return [
            "-Xms128m", f"-Xmx{self.heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.kafka_dir / 'log4j2.properties'}",
        ]  # fmt: skip

    def _format_storage(self, java: str, lib: Path) -> None:
        if (self.log_dirs / "meta.properties").exists():
            return  # formatted before: keep the existing cluster and its topics
        cmd = [
            java, "-Xmx128m", "-XX:TieredStopAtLevel=1",
            f"-Dlog4j2.configurationFile={self.kafka_dir / 'log4j2.properties'}",
            "-cp", str(lib / "*"), "kafka.tools.StorageTool", "format",
            f"--cluster-id={_cluster_id()}", f"--config={self.config_file}", "--ignore-formatted",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BrokerError(
                f"formatting {self.log_dirs} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}"
            )
        log.info("formatted KRaft storage in %s", self.log_dirs)

    def _check_ports_free(self) -> None:
        for port in (self.port, self.controller_port):
            if _port_open(self.host, port):
                raise BrokerError(
                    f"{self.host}:{port} is in use by something that is not an answering "
                    "Kafka broker; choose other ports (--port / --controller-port)"
                )

    def _check_same_ports(self) -> None:
        record = self._read_record()
        if (record.get("port"), record.get("controller_port")) != (self.port, self.controller_port):
            raise BrokerError(
                f"{self.data_dir} is in use by a broker on port {record.get('port')} "
                f"(controller {record.get('controller_port')}); stop it or use another --data-dir"
            )

    def _read_record(self) -> dict[str, object]:
        try:
            record = json.loads(self.pid_file.read_text())
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    def _read_pid(self) -> int | None:
        pid = self._read_record().get("pid")
        return pid if isinstance(pid, int) and pid > 0 else None

    def _owns(self, pid: int) -> bool:
        # Guards against pid reuse: only a live kafka.Kafka JVM on our config file is ours.
        cmd = _cmdline(pid)
        return _alive(pid) and "kafka.Kafka" in cmd and str(self.config_file) in cmd

    def _signal_group(self, pid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pid, sig)  # pid == pgid: _launch started it as a session leader
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            raise BrokerError(f"not allowed to signal broker pid {pid}: {exc}") from exc

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _group_members(pid):  # the JVM and anything it started
                self._reap()
                return True
            time.sleep(0.1)
        return False

    def _reap(self) -> None:
        # A broker started by this object is our child: collect its exit status so no zombie stays.
        if self._proc is not None and not _alive(self._proc.pid):
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                return  # not collectable yet; the next call tries again
            self._proc = None

    def _status(self, *, reused: bool = False) -> BrokerStatus:
        self._reap()
        pid = self._read_pid()
        running = pid is not None and self._owns(pid)
        version = self._read_record().get("version") if running else None  # unknown if not ours
        return BrokerStatus(
            running=running,
            reachable=is_reachable(self.bootstrap),
            pid=pid if running else None,
            port=self.port,
            controller_port=self.controller_port,
            bootstrap=self.bootstrap,
            version=str(version) if version else None,
            data_dir=self.data_dir,
            log_file=self.log_file,
            reused=reused,
        )

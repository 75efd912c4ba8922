#!/usr/bin/env python3
"""Local infrastructure for Eventline: a real PostgreSQL and a real Apache Kafka.

    python3 scripts/infra.py up | down | kill | status | restart [SERVICE …] [--brokers 3]
        SERVICE: kafka, postgres, cluster, cluster-N (scripts/kafka_cluster.py), secured (scripts/kafka_secured.py)
    python3 scripts/infra.py destroy cluster|secured    # SIGKILL it and delete its data

Everything lives under `.local/` (git-ignored): PostgreSQL's data directory and
Kafka's jars, storage and logs. Both servers listen on 127.0.0.1 only, on
project ports, so they never collide with a system-wide server. `up` is
idempotent, `down` stops only the processes whose pid files it wrote.

Standard library only: this runs before the project's virtualenv exists.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL = Path(os.environ.get("EVENTLINE_LOCAL_DIR", ROOT / ".local")).resolve()
HOST = "127.0.0.1"
KAFKA_PORT = int(os.environ.get("EVENTLINE_KAFKA_PORT", "19092"))
KAFKA_CONTROLLER_PORT = int(os.environ.get("EVENTLINE_KAFKA_CONTROLLER_PORT", "19093"))
PG_PORT = int(os.environ.get("EVENTLINE_PG_PORT", "15432"))
PG_USER = PG_PASSWORD = PG_DATABASE = "eventline"
STOP_GRACE_S = 30.0
START_TIMEOUT_S = 120.0


class InfraError(RuntimeError):
    """Something could not start or stop; the message says what and where to look."""


def say(message: str) -> None:
    print(f"[infra] {message}", flush=True)


# ---------------------------------------------------------------- processes


def read_pid(pid_file: Path) -> int | None:
    try:
        # postmaster.pid holds more lines after the pid; ours hold just the pid.
        return int(pid_file.read_text().split("\n", 1)[0].strip())
    except (FileNotFoundError, ValueError):
        return None


def is_ours(pid: int, marker: str) -> bool:
    """True when `pid` is alive and its command line names our `.local` folder.

    A stale pid file can point at a recycled pid; the marker check makes sure
    `down` never signals a process that this script did not start.
    """
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return marker.encode() in cmdline


def listener_of(port: int) -> tuple[int, str] | None:
    """The pid and command line of the process listening on 127.0.0.1:`port`, when this user can see it."""
    wanted = f"{socket.htonl(0x7F000001):08X}:{port:04X}"
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and (fields[1] == wanted or fields[1].endswith(f":{port:04X}")):
                inodes.add(f"socket:[{fields[9]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                return int(proc.name), cmdline
        except OSError:
            continue
    return None


def refuse_foreign(name: str, port: int, variable: str) -> None:
    """A server on our port that this checkout did not start: using it would mix two checkouts' tests."""
    found = listener_of(port)
    who = f"pid {found[0]} ({found[1][:200]})" if found else "a process this user cannot see"
    raise InfraError(
        f"{name}: port {HOST}:{port} is taken by {who}, which this checkout ({LOCAL}) did not start. "
        f"Stop it (another checkout's `make down`), or give this checkout ports of its own: "
        f"`make test KAFKA_PORT=29092 KAFKA_CONTROLLER_PORT=29093 PG_PORT=25432 API_PORT=8100` "
        f"(or set {variable} and the other EVENTLINE_*_PORT variables)."
    )


def stop_process(name: str, pid_file: Path, marker: str, sig: int = signal.SIGTERM) -> None:
    pid = read_pid(pid_file)
    if pid is None or not is_ours(pid, marker):
        pid_file.unlink(missing_ok=True)
        say(f"{name}: not running")
        return
    say(f"{name}: stopping (pid {pid})")
    os.kill(pid, sig)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and is_ours(pid, marker):
        time.sleep(0.1)
    if is_ours(pid, marker):
        say(f"{name}: still running after {STOP_GRACE_S:.0f}s, sending SIGKILL")
        os.kill(pid, signal.SIGKILL)
        while is_ours(pid, marker):
            time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    say(f"{name}: stopped")


def kill_process(name: str, pid_file: Path, marker: str, keep_pid_file: bool = False) -> None:
    """SIGKILL, as a crash would: no shutdown hook runs. Returns once the process is gone."""
    pid = read_pid(pid_file)
    if pid is None or not is_ours(pid, marker):
        say(f"{name}: not running")
        return
    say(f"{name}: killing (SIGKILL, pid {pid})")
    os.kill(pid, signal.SIGKILL)
    while is_ours(pid, marker):
        time.sleep(0.05)
    if not keep_pid_file:  # PostgreSQL finds its own stale postmaster.pid and checks it
        pid_file.unlink(missing_ok=True)
    say(f"{name}: killed")


def wait_until(check, what: str, log: Path, proc: subprocess.Popen | None = None) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + START_TIMEOUT_S
    next_note = time.monotonic() + 5
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise InfraError(f"{what} exited with code {proc.returncode}; read {log}")
        if time.monotonic() >= next_note:
            say(f"  still waiting for {what}…")
            next_note = time.monotonic() + 5
        time.sleep(0.2)
    raise InfraError(f"{what} did not become ready in {START_TIMEOUT_S:.0f}s; read {log}")


# ---------------------------------------------------------------- PostgreSQL


@dataclass(frozen=True)
class Postgres:
    home: Path = LOCAL / "postgres"

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def log(self) -> Path:
        return self.home / "postgres.log"

    @property
    def pid_file(self) -> Path:
        return self.data / "postmaster.pid"

    def bindir(self) -> Path:
        found = find_postgres_bindir()
        if found is None:
            install_postgres()
            found = find_postgres_bindir()
        if found is None:
            raise InfraError("PostgreSQL server binaries not found after installing 'postgresql'")
        return found

    def as_owner(self, *argv: str) -> list[str]:
        # initdb and postgres refuse to run as root: run them as 'postgres'.
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return list(argv)

    def running(self) -> bool:
        return pg_answers()

    def ours(self) -> bool:
        pid = read_pid(self.pid_file)
        return pid is not None and is_ours(pid, str(self.data))

    def up(self) -> None:
        if self.running():
            if not self.ours():
                refuse_foreign("postgres", PG_PORT, "EVENTLINE_PG_PORT")
            say(f"postgres: already running on {HOST}:{PG_PORT}")
            return
        bindir = self.bindir()
        self.home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            ensure_postgres_user()
            shutil.chown(self.home, "postgres", "postgres")
        if not (self.data / "PG_VERSION").exists():
            self.initdb(bindir)
        say(f"postgres: starting on {HOST}:{PG_PORT} (log: {self.log})")
        command = self.as_owner(
            str(bindir / "pg_ctl"),
            "start",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            str(int(START_TIMEOUT_S)),
            "-s",
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while (result := subprocess.run(command, capture_output=True, text=True)).returncode != 0:
            # After a crash (a killed postmaster) its backends take a moment to notice and exit;
            # until then the old shared memory is "still in use" and the start is refused.
            if time.monotonic() > deadline or "still in use" not in self.log_tail():
                raise InfraError(f"postgres did not start: {result.stderr.strip()}; read {self.log}")
            say("postgres: the crashed server's backends are still exiting; starting again")
            time.sleep(1)
        wait_until(self.running, "postgres", self.log)
        self.create_database(bindir)
        say("postgres: ready")

    def initdb(self, bindir: Path) -> None:
        say(f"postgres: initialising {self.data}")
        pwfile = self.home / "pwfile"
        pwfile.write_text(PG_PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        command = self.as_owner(
            str(bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            PG_USER,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        result = subprocess.run(command, capture_output=True, text=True)
        pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise InfraError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        settings = {
            "listen_addresses": f"'{HOST}'",
            "port": str(PG_PORT),
            "unix_socket_directories": f"'{self.home}'",
            "max_connections": "200",
            "shared_buffers": "256MB",
            "log_min_messages": "warning",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# Eventline local development settings\n")
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    def create_database(self, bindir: Path) -> None:
        psql = self.as_owner(
            str(bindir / "psql"),
            "-h",
            str(self.home),
            "-p",
            str(PG_PORT),
            "-U",
            PG_USER,
            "-d",
            "postgres",
            "-tAc",
        )
        exists = subprocess.run(
            [*psql, f"SELECT 1 FROM pg_database WHERE datname='{PG_DATABASE}'"], capture_output=True, text=True
        )
        if exists.stdout.strip() == "1":
            return
        say(f"postgres: creating database {PG_DATABASE}")
        created = subprocess.run([*psql, f"CREATE DATABASE {PG_DATABASE}"], capture_output=True, text=True)
        if created.returncode != 0:
            raise InfraError(f"could not create database {PG_DATABASE}: {created.stderr.strip()}")

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def down(self) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to leave.
        stop_process("postgres", self.pid_file, str(self.data), signal.SIGINT)

    def kill(self) -> None:
        """A crash: SIGKILL the postmaster; the next start runs crash recovery."""
        kill_process("postgres", self.pid_file, str(self.data), keep_pid_file=True)


def find_postgres_bindir() -> Path | None:
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    on_path = shutil.which("postgres")
    return Path(on_path).resolve().parent if on_path else None


def install_postgres() -> None:
    say("postgres: server binaries not found, installing Debian's 'postgresql' package")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]):
        if subprocess.run([*sudo, *argv], env=env).returncode != 0:
            raise InfraError(f"'{' '.join(argv)}' failed; install PostgreSQL 15+ server binaries by hand")
    # Debian's package starts a cluster on 5432; we do not use it.


def ensure_postgres_user() -> None:
    if subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)


def pg_answers() -> bool:
    """A startup packet gets an authentication request back once the server accepts connections."""
    try:
        with socket.create_connection((HOST, PG_PORT), timeout=1) as conn:
            body = struct.pack("!I", 196608) + b"user\0" + PG_USER.encode() + b"\0\0"
            conn.sendall(struct.pack("!I", len(body) + 4) + body)
            return conn.recv(1)[:1] == b"R"
    except OSError:
        return False


# ---------------------------------------------------------------- Kafka


@dataclass(frozen=True)
class Kafka:
    """The single-node broker (KRaft, broker and controller in one process); kafka_cluster.py extends it."""

    home: Path = LOCAL / "kafka"
    port: int = KAFKA_PORT
    controller_port: int = KAFKA_CONTROLLER_PORT
    name: str = "kafka"

    @property
    def libs(self) -> Path:
        return LOCAL / "kafka" / "libs"  # one copy of the jars, for every node

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def properties(self) -> Path:
        return self.home / "server.properties"

    def running(self) -> bool:
        return kafka_answers(self.port)

    def ours(self) -> bool:
        pid = read_pid(self.pid_file)
        return pid is not None and is_ours(pid, str(self.home))

    def up(self) -> None:
        proc = self.start()
        if proc is not None:
            wait_until(self.running, self.name, self.logs / "server.log", proc)
            say(f"{self.name}: ready")

    def start(self) -> subprocess.Popen | None:  # type: ignore[type-arg]
        """Launch the broker without waiting for it (a cluster starts all its nodes, then waits).

        None when it is running already.
        """
        if self.running():
            if not self.ours():
                refuse_foreign(self.name, self.port, "EVENTLINE_KAFKA_PORT")
            say(f"{self.name}: already running on {HOST}:{self.port}")
            return None
        if self.resume_paused():
            return None
        self.fetch_jars()
        self.write_config()
        self.format_storage()
        self.logs.mkdir(parents=True, exist_ok=True)
        out = self.logs / "kafka.out"
        say(f"{self.name}: starting on {HOST}:{self.port} (log: {self.logs / 'server.log'})")
        with out.open("ab") as sink:
            proc = subprocess.Popen(
                self.java_command(),
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.home,
            )
        self.pid_file.write_text(str(proc.pid))
        return proc

    def resume_paused(self) -> bool:
        """Wake our broker when a test that SIGSTOPped it was killed before its SIGCONT.

        It still holds the port, so starting another would only fail to bind."""
        found = listener_of(self.port)
        if found is None or not is_ours(found[0], str(self.home)):
            return False
        state = Path(f"/proc/{found[0]}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state not in ("T", "t"):
            return False
        say(f"{self.name}: our broker (pid {found[0]}) was left paused (SIGSTOP); resuming it")
        os.kill(found[0], signal.SIGCONT)
        self.pid_file.write_text(str(found[0]))
        wait_until(self.running, self.name, self.logs / "server.log", None)
        return True

    def down(self) -> None:
        stop_process(self.name, self.pid_file, str(self.home))

    def kill(self) -> None:
        """A crash: SIGKILL the broker; the next start recovers its logs from disk."""
        kill_process(self.name, self.pid_file, str(self.home))

    def fetch_jars(self) -> None:
        stamp = self.libs / ".pom-stamp"
        pom = ROOT / "scripts" / "kafka" / "pom.xml"
        if stamp.exists() and stamp.read_text() == pom.read_text():
            return
        if shutil.which("mvn") is None:
            raise InfraError("Maven ('mvn') is needed to fetch the Kafka jars from Maven Central")
        say("kafka: fetching the broker's jars from Maven Central (cached in ~/.m2)")
        shutil.rmtree(self.libs, ignore_errors=True)
        result = subprocess.run(
            ["mvn", "-B", "-q", "-f", str(pom), "dependency:copy-dependencies", f"-DoutputDirectory={self.libs}"],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise InfraError(f"mvn could not fetch the Kafka jars:\n{result.stdout[-4000:]}")
        stamp.write_text(pom.read_text())

    def write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        settings = self.server_settings()
        self.properties.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        (self.home / "log4j2.properties").write_text(LOG4J2_PROPERTIES)

    def server_settings(self) -> dict[str, str]:
        listeners = f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}"
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{HOST}:{self.controller_port}",
            "listeners": listeners,
            "advertised.listeners": listeners,
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data),
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.partitions": "1",
            "num.recovery.threads.per.data.dir": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "8",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            "unclean.leader.election.enable": "false",
            # Let a test's short-lived consumer groups and transactional ids expire sooner.
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": "10000",
            # After a crash (SIGKILL), the node's controller replays its broker's registration from its
            # own log and refuses the new incarnation until that session times out: Kafka's 9 s by
            # default, 3 s here, as on the local cluster (scripts/kafka_cluster.py says why not in production).
            "broker.session.timeout.ms": "3000",
            "broker.heartbeat.interval.ms": "500",
        }

    def format_storage(self) -> None:
        if (self.data / "meta.properties").exists():
            return
        say(f"{self.name}: formatting storage in {self.data}")
        result = subprocess.run(
            [
                "java",
                "-cp",
                f"{self.libs}/*",
                "kafka.tools.StorageTool",
                "format",
                *self.quorum_flags(),
                *self.feature_flags(),
                "-t",
                self.cluster_id(),
                "-c",
                str(self.properties),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise InfraError(f"kafka storage format failed:\n{result.stdout}\n{result.stderr}")

    def quorum_flags(self) -> list[str]:
        return ["--standalone"]  # a quorum of one: this node

    def feature_flags(self) -> list[str]:
        # Eligible leader replicas (KIP-966, on by default for clusters formatted by 4.1) track
        # replicas that fell out of an ISR smaller than min.insync.replicas. With one broker every
        # crash is such a case: the ISR empties when the broker is fenced, and the recovery after a
        # restart went through unclean elections in which some partitions answered produces with
        # NOT_ENOUGH_REPLICAS for minutes (seen in the fault suite's crash rounds, Kafka 4.1.1). A
        # single replica has nothing to elect among, so the local broker runs without them; the
        # three-broker cluster keeps Kafka's default.
        return ["--feature", "eligible.leader.replicas.version=0"]

    def cluster_id(self) -> str:
        return new_cluster_id()

    def java_command(self) -> list[str]:
        heap = os.environ.get("EVENTLINE_KAFKA_HEAP", "-Xms512m -Xmx1g").split()
        return [
            "java",
            *heap,
            "-server",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:MaxInlineLevel=15",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.logs}",
            "-cp",
            f"{self.libs}/*",
            "kafka.Kafka",
            str(self.properties),
        ]


LOG4J2_PROPERTIES = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
appender.err.filter.threshold.type = ThresholdFilter
appender.err.filter.threshold.level = warn
rootLogger.level = info
rootLogger.appenderRefs = file, err
rootLogger.appenderRef.file.ref = FILE
rootLogger.appenderRef.err.ref = STDERR
"""


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64, not starting with '-'."""
    cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=").replace("-", "A", 1)
    return "A" + cluster_id[1:] if cluster_id.startswith("-") else cluster_id


def kafka_answers(port: int = KAFKA_PORT, brokers: int = 1) -> bool:
    """True when the broker answers a Metadata request listing at least `brokers` brokers.

    A hand-built Metadata v4 request (no topics) keeps this script free of
    third-party clients. A listed broker means the controller has registered it,
    which is when produce and admin requests start to work.
    """
    client_id = b"eventline-infra"
    header = struct.pack("!hhih", 3, 4, 1, len(client_id)) + client_id
    body = struct.pack("!i", 0) + b"\0"  # zero topics, allow_auto_topic_creation=false
    request = header + body
    try:
        with socket.create_connection((HOST, port), timeout=2) as conn:
            conn.sendall(struct.pack("!i", len(request)) + request)
            size = struct.unpack("!i", recv_exactly(conn, 4))[0]
            response = recv_exactly(conn, size)
    except OSError:
        return False
    # correlation id (4), throttle time (4), broker array length (4)
    return len(response) >= 12 and struct.unpack("!i", response[8:12])[0] >= brokers


def recv_exactly(conn: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = conn.recv(size - len(chunks))
        if not chunk:
            raise OSError("connection closed")
        chunks += chunk
    return bytes(chunks)


# ---------------------------------------------------------------- CLI


SERVICES = {"postgres": Postgres(), "kafka": Kafka()}


def status() -> int:
    for name, service in SERVICES.items():
        state = "up" if service.running() else "down"
        say(f"{name}: {state}")
    return 0


def main(argv: list[str]) -> int:
    import kafka_cluster  # beside these files; they build on the classes above
    import kafka_secured

    services = {**SERVICES, **kafka_cluster.services(), **kafka_secured.services()}
    parser = argparse.ArgumentParser(description="Start and stop Eventline's local Kafka and PostgreSQL.")
    parser.add_argument(
        "action",
        choices=["up", "down", "kill", "status", "restart", "destroy"],
        help="kill: SIGKILL, a crash (for the fault tests); up starts it again; destroy: kill and delete the data",
    )
    parser.add_argument(
        "services", nargs="*", metavar="SERVICE", help=f"{', '.join(services)}; default: postgres and kafka"
    )
    parser.add_argument("--brokers", type=int, choices=[1, 3], default=1, help="3: the three-node cluster for kafka")
    args = parser.parse_args(argv)
    unknown = set(args.services) - set(services)
    if unknown:
        parser.error(f"unknown service(s): {', '.join(sorted(unknown))}")
    default = ["postgres", "kafka" if args.brokers == 1 else "cluster"]
    if args.action == "down" and not args.services:
        default = list(services)  # `down` stops everything this checkout started
    chosen = [services[name] for name in (args.services or default)]
    try:
        if args.action == "status":
            return status()
        if args.action == "kill":
            for service in reversed(chosen):
                service.kill()
        if args.action == "destroy":
            if any(not hasattr(service, "destroy") for service in chosen) or not args.services:
                parser.error("destroy is for the cluster and the secured broker only: `destroy cluster`")
            for service in chosen:
                service.destroy()  # type: ignore[union-attr]
        if args.action in ("down", "restart"):
            for service in reversed(chosen):
                service.down()
        if args.action in ("up", "restart"):
            for service in chosen:
                service.up()
    except (InfraError, kafka_cluster.InfraError) as error:
        print(f"[infra] ERROR: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

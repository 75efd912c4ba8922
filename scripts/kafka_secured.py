"""A single-node Apache Kafka that trusts no one: SASL/SCRAM for every client, ACLs for every action.

    python3 scripts/infra.py up secured              # start it (port EVENTLINE_SECURED_PORT, 19292)
    python3 scripts/kafka_secured.py grant <namespace>   # the ACLs of one namespace's processes
    python3 scripts/kafka_secured.py acls <namespace>    # print them: kafka-acls --add arguments, a rule a line
    python3 scripts/infra.py destroy secured         # SIGKILL it and delete its data

The profile a deployment runs where Kafka is reachable by more than Eventline's
own processes: a client that has not authenticated gets nothing, and each
process authenticates as its own principal (`api`, `processor`, `projector`,
`saga`), whose ACLs let it do only its part. Only the processor writes events,
aggregates, command results and notifications; only the API and the saga write
commands. `admin` is the super user that creates topics and grants ACLs
(`eventline topics create` runs as it).

Credentials (SCRAM-SHA-512) are created when the storage is formatted (KIP-900:
`kafka-storage format --add-scram`), with random passwords kept in
`.local/kafka-secured/credentials.json` (mode 0600); production would create
them with `kafka-configs --alter --add-config SCRAM-SHA-512=…` and keep them in
its secret store. The controller listener authenticates too (SASL PLAIN, the
broker as `admin`): in KRaft an admin client may talk to controllers directly.
ACLs are granted with Kafka's own `kafka-acls` tool (`org.apache.kafka.tools.AclCommand`);
aiokafka has no ACL API.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from infra import HOST, LOCAL, InfraError, Kafka, say

SECURED_PORT = int(os.environ.get("EVENTLINE_SECURED_PORT", "19292"))
HOME = LOCAL / "kafka-secured"
CREDENTIALS = HOME / "credentials.json"
USERS = ("admin", "api", "processor", "projector", "saga")
MECHANISM = "SCRAM-SHA-512"
STARTED = "Kafka Server started"  # the broker's log line once it serves clients


def credentials() -> dict[str, str]:
    """Each principal's password, created on first use."""
    if not CREDENTIALS.exists():
        HOME.mkdir(parents=True, exist_ok=True)
        CREDENTIALS.write_text(json.dumps({user: secrets.token_urlsafe(24) for user in USERS}, indent=2))
        CREDENTIALS.chmod(0o600)
    found: dict[str, str] = json.loads(CREDENTIALS.read_text())
    return found


def jaas(module: str, user: str, password: str, **extra: str) -> str:
    options = " ".join(f'{k}="{v}"' for k, v in {"username": user, "password": password, **extra}.items())
    return f"org.apache.kafka.common.security.{module} required {options};"


@dataclass(frozen=True)
class SecuredKafka(Kafka):
    home: Path = HOME
    port: int = SECURED_PORT
    controller_port: int = SECURED_PORT + 1
    name: str = "secured"

    def server_settings(self) -> dict[str, str]:
        admin = credentials()["admin"]
        listeners = f"SASL_PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}"
        settings = super().server_settings()
        settings.update({
            "listeners": listeners,
            "advertised.listeners": listeners,
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            # Clients: SCRAM, its credentials in the cluster's metadata.
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            f"listener.name.sasl_plaintext.{MECHANISM.lower()}.sasl.jaas.config":
                jaas("scram.ScramLoginModule", "admin", admin),
            # The controller: PLAIN, since SCRAM credentials live in the metadata it serves.
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config":
                jaas("plain.PlainLoginModule", "admin", admin, user_admin=admin),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": "User:admin",
        })  # fmt: skip
        return settings

    def quorum_flags(self) -> list[str]:
        added = [f"{MECHANISM}=[name={user},password={password}]" for user, password in credentials().items()]
        return ["--standalone", *(flag for scram in added for flag in ("--add-scram", scram))]

    def running(self) -> bool:
        # The broker refuses a client that has not authenticated, so readiness is its own log line.
        log = self.logs / "server.log"
        return self.ours() and log.exists() and STARTED in log.read_text(errors="replace")

    def start(self) -> subprocess.Popen | None:  # type: ignore[type-arg]
        log = self.logs / "server.log"
        if not self.ours() and log.exists():
            log.unlink()  # a line from an earlier run must not count as this one's start
        return super().start()

    def destroy(self) -> None:
        """SIGKILL the broker and delete its data and credentials: the next `up` starts afresh."""
        self.kill()
        shutil.rmtree(HOME, ignore_errors=True)
        say(f"secured: data deleted ({HOME})")


def rule(users: str, operations: str, resource: str, *names: str, prefixed: bool = False) -> list[str]:
    """One `kafka-acls --add` invocation: each of `users` may do each of `operations` on each name."""
    return [
        *(f"--allow-principal=User:{user}" for user in users.split()),
        *(f"--operation={operation}" for operation in operations.split()),
        *(f"--{resource}={name}" for name in names),
        *(["--resource-pattern-type=prefixed"] if prefixed else []),
    ]


def grants(namespace: str) -> list[list[str]]:
    """Each process's ACLs for one namespace (docs/security.md has them as a table)."""
    ns = f"{namespace}."
    return [
        # Every process checks the topics' layout at start and reads their end offsets.
        rule("api processor projector saga", "Describe DescribeConfigs", "topic", ns, prefixed=True),
        # Commands: written by the API and the saga only.
        rule("api saga", "Write", "topic", f"{ns}commands"),
        # The event store: written by the processors only, in their transactions.
        rule(
            "processor",
            "Write",
            "topic",
            *(ns + t for t in ("events", "aggregates", "command-results", "notifications")),
        ),
        rule("processor", "Write Describe", "transactional-id", f"{ns}processor.", prefixed=True),
        rule("processor", "Read", "topic", f"{ns}commands", f"{ns}aggregates", f"{ns}events"),
        rule("processor", "Read", "group", f"{ns}processor"),
        # Readers: the API its answers and notifications, the projector the events and the commands
        # with their results (for their status), the saga the events.
        rule("api", "Read", "topic", f"{ns}command-results", f"{ns}notifications"),
        rule("projector", "Read", "topic", f"{ns}events", f"{ns}commands", f"{ns}command-results"),
        rule("projector", "Read", "group", f"{ns}projector.", prefixed=True),
        rule("saga", "Read", "topic", f"{ns}events"),
        rule("saga", "Read", "group", f"{ns}saga.", prefixed=True),
        # Personal data's keys (docs/privacy.md): created by the API (and by a processor for a command
        # stored before sealing), read by every process that seals or opens personal fields.
        rule("api processor", "Write", "topic", f"{ns}subject-keys"),
        rule("api processor projector", "Read", "topic", f"{ns}subject-keys"),
    ]


def grant(namespace: str) -> None:
    kafka = SecuredKafka()
    kafka.fetch_jars()
    config = HOME / "admin.properties"
    config.write_text(
        f"security.protocol=SASL_PLAINTEXT\nsasl.mechanism={MECHANISM}\n"
        f"sasl.jaas.config={jaas('scram.ScramLoginModule', 'admin', credentials()['admin'])}\n"
    )
    config.chmod(0o600)
    acls = [
        "java",
        "-Xmx256m",
        "-XX:TieredStopAtLevel=1",
        "-cp",
        f"{kafka.libs}/*",
        "org.apache.kafka.tools.AclCommand",
    ]
    base = [*acls, f"--bootstrap-server={HOST}:{kafka.port}", f"--command-config={config}", "--add", "--force"]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:  # a JVM each: four at a time
        runs = list(
            pool.map(lambda args: subprocess.run([*base, *args], capture_output=True, text=True), grants(namespace))
        )
    for run in runs:
        if run.returncode != 0:
            raise InfraError(f"kafka-acls failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    say(f"secured: ACLs of namespace {namespace} granted ({len(runs)} rules, {time.monotonic() - started:.1f}s)")


def services() -> dict[str, SecuredKafka]:
    return {"secured": SecuredKafka()}


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("grant", "acls"):
        sys.exit("usage: python3 scripts/kafka_secured.py grant|acls <namespace>")
    if sys.argv[1] == "acls":  # docker-compose.secured.yml grants these (tests/integration/test_compose_cli.py)
        print("\n".join(shlex.join(rule) for rule in grants(sys.argv[2])))
        sys.exit(0)
    try:
        grant(sys.argv[2])
    except InfraError as error:
        print(f"[infra] ERROR: {error}", file=sys.stderr, flush=True)
        sys.exit(1)

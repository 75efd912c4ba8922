"""A three-node Apache Kafka cluster on loopback, as production runs it: replication 3, min.insync.replicas 2.

    python3 scripts/infra.py up --brokers 3          # PostgreSQL and the cluster
    python3 scripts/infra.py kill cluster-2          # SIGKILL one node (a crash)
    python3 scripts/infra.py up cluster-2            # start it again on its data
    python3 scripts/infra.py destroy cluster         # SIGKILL all three and delete their data

Each node is a KRaft broker and controller in one process (a quorum of three
voters), under `.local/kafka-cluster/node-N`, listening on
`EVENTLINE_CLUSTER_PORT + 2·(N-1)` (default 19192, 19194, 19196) with its
controller one port above. Every internal topic is replicated three times.

Failure detection is shortened for the local cluster, so a fault test sees a
dead broker's partitions move within seconds: a broker that sends no heartbeat
to the controller for `broker.session.timeout.ms` (here 3 s, Kafka's default
9 s) is fenced and its partitions get new leaders. Production should keep the
defaults (or tune them against its network's pauses): too short a session
fences brokers on a GC pause or a slow disk.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass

from infra import HOST, LOCAL, InfraError, Kafka, kafka_answers, new_cluster_id, say

CLUSTER_PORT = int(os.environ.get("EVENTLINE_CLUSTER_PORT", "19192"))
NODES = 3
HOME = LOCAL / "kafka-cluster"
READY_TIMEOUT_S = 180.0


def broker_port(node: int) -> int:
    return CLUSTER_PORT + 2 * (node - 1)


def bootstrap() -> str:
    """The cluster's bootstrap servers, for EVENTLINE_KAFKA_BOOTSTRAP."""
    return ",".join(f"{HOST}:{broker_port(n)}" for n in range(1, NODES + 1))


@dataclass(frozen=True)
class ClusterNode(Kafka):
    node: int = 1

    def server_settings(self) -> dict[str, str]:
        voters = ",".join(f"{n}@{HOST}:{broker_port(n) + 1}" for n in range(1, NODES + 1))
        settings = super().server_settings()
        del settings["controller.quorum.bootstrap.servers"]
        settings.update({
            "node.id": str(self.node),
            "controller.quorum.voters": voters,
            "offsets.topic.replication.factor": "3",
            "transaction.state.log.replication.factor": "3",
            "transaction.state.log.min.isr": "2",
            "share.coordinator.state.topic.replication.factor": "3",
            "share.coordinator.state.topic.min.isr": "2",
            "default.replication.factor": "3",
            "min.insync.replicas": "2",
            # Failure detection, shortened for the local cluster (see the module docstring).
            "broker.session.timeout.ms": "3000",
            "broker.heartbeat.interval.ms": "500",
            "replica.lag.time.max.ms": "5000",
        })  # fmt: skip
        return settings

    def quorum_flags(self) -> list[str]:
        return []  # the voters are listed in the configuration

    def feature_flags(self) -> list[str]:
        return []  # Kafka's defaults, eligible leader replicas included, as a new production cluster has

    def cluster_id(self) -> str:
        # One id for all three nodes, kept beside them.
        path = HOME / "cluster.id"
        if not path.exists():
            HOME.mkdir(parents=True, exist_ok=True)
            path.write_text(new_cluster_id())
        return path.read_text().strip()


def node(n: int) -> ClusterNode:
    port = broker_port(n)
    return ClusterNode(home=HOME / f"node-{n}", port=port, controller_port=port + 1, name=f"cluster-{n}", node=n)


@dataclass(frozen=True)
class Cluster:
    """All three nodes: started together (a KRaft quorum needs a majority to elect a controller)."""

    name: str = "cluster"

    def nodes(self) -> list[ClusterNode]:
        return [node(n) for n in range(1, NODES + 1)]

    def running(self) -> bool:
        return kafka_answers(broker_port(1), brokers=NODES)

    def up(self) -> None:
        procs = [(n, n.start()) for n in self.nodes()]
        deadline = time.monotonic() + READY_TIMEOUT_S
        next_note = time.monotonic() + 5
        while not all(kafka_answers(n.port, brokers=NODES) for n in self.nodes()):
            for n, proc in procs:
                if proc is not None and proc.poll() is not None:
                    raise InfraError(f"{n.name} exited with code {proc.returncode}; read {n.logs / 'server.log'}")
            if time.monotonic() > deadline:
                raise InfraError(f"the cluster did not form in {READY_TIMEOUT_S:.0f}s; read {HOME}/node-*/logs")
            if time.monotonic() >= next_note:
                say("  still waiting for the cluster's three brokers…")
                next_note = time.monotonic() + 5
            time.sleep(0.2)
        say(f"cluster: ready, three brokers at {bootstrap()}")

    def down(self) -> None:
        for n in reversed(self.nodes()):
            n.down()

    def kill(self) -> None:
        for n in self.nodes():
            n.kill()

    def destroy(self) -> None:
        """SIGKILL every node and delete the cluster's data: the next `up` formats a new one.

        For the tests, which own the cluster: a controlled shutdown of three nodes one after
        the other takes most of a minute, and every run's topics kept on disk make each later
        restart recover them all."""
        self.kill()
        shutil.rmtree(HOME, ignore_errors=True)
        say(f"cluster: data deleted ({HOME})")


def services() -> dict[str, Kafka | Cluster]:
    found: dict[str, Kafka | Cluster] = {"cluster": Cluster()}
    found.update({f"cluster-{n}": node(n) for n in range(1, NODES + 1)})
    return found

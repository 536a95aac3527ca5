"""A private three-node RabbitMQ cluster for tests that kill a node, and the test-only TCP front
that gives Sift's services one URL for it.

Each node is a `PrivateRabbit` (Debian's rabbitmq-server, started from its sbin folder): its own
node name `sift-<letter>-<port>@localhost`, AMQP and distribution ports from free ports, config,
mnesia and log folders under `root/<letter>`, no plugins (so no management port). They share one
Erlang cookie (each node's HOME holds a copy), and nodes b and c join a's cluster with
`stop_app` / `join_cluster` / `start_app` before any queue exists: a quorum queue declared on
the cluster then gets every node as a member (RabbitMQ 3.10's default initial group size is the
cluster's size; nothing is configured), and its leader is the node the declaring connection
landed on.

Clients: Sift's services take one `SIFT_RABBIT_URL`, and neither aio-pika/aiormq nor FastStream
accept several hosts in it, so the tests put `ClusterFront` (a `TcpProxy` whose every new
connection goes to the next live node, round robin) in front, as production puts a TCP load
balancer or a Kubernetes Service before the cluster. It is a test device, not a product part.
"""

import asyncio
import json
import secrets
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.support.private_services import PrivateRabbit
from tests.support.tcp_proxy import TcpProxy

LETTERS = "abcdefgh"


@dataclass(frozen=True)
class QueueMembers:
    name: str
    leader: str  # a node name
    members: tuple[str, ...]
    online: tuple[str, ...]


class PrivateRabbitCluster:
    def __init__(self, root: Path, nodes: int = 3) -> None:
        if not 1 <= nodes <= len(LETTERS):
            raise ValueError(f"nodes must be 1..{len(LETTERS)}, got {nodes}")
        cookie = secrets.token_hex(16).upper()
        self.nodes: dict[str, PrivateRabbit] = {}
        for letter in LETTERS[:nodes]:
            node = PrivateRabbit(root / letter)
            node.node = f"sift-{letter}-{node.port}@localhost"
            node.env["RABBITMQ_NODENAME"] = node.node  # the same dict its Child starts with
            cookie_file = node.root / ".erlang.cookie"  # HOME is the node's root
            cookie_file.write_text(cookie)
            cookie_file.chmod(0o400)
            self.nodes[letter] = node

    @property
    def first(self) -> PrivateRabbit:
        return next(iter(self.nodes.values()))

    def urls(self) -> dict[str, str]:
        return {letter: node.url for letter, node in self.nodes.items()}

    def letter_of(self, node_name: str) -> str:
        for letter, node in self.nodes.items():
            if node.node == node_name:
                return letter
        raise KeyError(f"no node named {node_name}")

    def start(self) -> float:
        """Start every node at once, then cluster b, c, … with a; the seconds it took."""
        started = time.monotonic()
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda node: node.start(), self.nodes.values()))
        for node in list(self.nodes.values())[1:]:
            for args in (("stop_app",), ("join_cluster", self.first.node), ("start_app",)):
                run = node.ctl(*args, timeout_s=120)
                if run.returncode != 0:
                    raise RuntimeError(f"{node.node}: rabbitmqctl {args}: {run.stdout}{run.stderr}")
        running = self.running_nodes()
        if len(running) != len(self.nodes):
            raise RuntimeError(f"cluster formed with {running}, expected {len(self.nodes)} nodes")
        return time.monotonic() - started

    def stop(self) -> None:
        for node in reversed(list(self.nodes.values())):
            node.stop()

    def live(self) -> list[PrivateRabbit]:
        return [node for node in self.nodes.values() if node.server.alive()]

    def ctl(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        """rabbitmqctl on the first live node (cluster-wide commands answer from any)."""
        live = self.live()
        if not live:
            raise RuntimeError("no RabbitMQ node is running")
        return live[0].ctl(*args, timeout_s=timeout_s)

    def running_nodes(self) -> list[str]:
        run = self.ctl("cluster_status", "--formatter", "json")
        if run.returncode != 0:
            raise RuntimeError(f"rabbitmqctl cluster_status: {run.stdout}{run.stderr}")
        return sorted(json.loads(run.stdout)["running_nodes"])

    def kill(self, letter: str) -> int | None:
        """SIGKILL to the node's whole process group (beam and its helpers); the exit code."""
        return self.nodes[letter].server.kill()

    def restart(self, letter: str, timeout_s: float = 120.0) -> float:
        """Start a stopped or killed node on its data; it rejoins by itself. Seconds taken."""
        return self.nodes[letter].start(timeout_s)

    def queues(self) -> dict[str, QueueMembers]:
        """Every quorum queue's leader, members and online members."""
        run = self.ctl(
            "list_queues", "--quiet", "--formatter", "json",
            "name", "type", "leader", "members", "online",
        )  # fmt: skip
        if run.returncode != 0:
            raise RuntimeError(f"rabbitmqctl list_queues: {run.stdout}{run.stderr}")
        found = {}
        for row in json.loads(run.stdout or "[]"):
            if row.get("type") != "quorum":
                continue
            found[row["name"]] = QueueMembers(
                row["name"], str(row["leader"]), tuple(row["members"]), tuple(row["online"])
            )
        return found

    def leader_of(self, queue: str) -> str:
        """The letter of the node leading `queue`."""
        return self.letter_of(self.queues()[queue].leader)

    def queue_counts(self) -> dict[str, tuple[int, int]]:
        """Every queue's (ready, unacknowledged) messages, asked of a live node."""
        return self.live()[0].queue_counts()


class ClusterFront(TcpProxy):
    """TEST-ONLY: one address for a cluster. Each new client connection goes to the next node
    (round robin) that accepts TCP; a killed node's connections end with it, and the clients'
    reconnections land on the nodes still up. Run on a `BackgroundLoop`, like `TcpProxy`."""

    def __init__(self, ports: Sequence[int]) -> None:
        super().__init__("127.0.0.1", ports[0])
        self.ports = list(ports)
        self._next = 0

    async def open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        for _ in range(len(self.ports)):
            port = self.ports[self._next % len(self.ports)]
            self._next += 1
            try:
                return await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
        raise ConnectionRefusedError(f"no cluster node accepts connections on {self.ports}")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"


class ClusterRabbit:
    """What the fault rig's observers use of `rig.rabbit` (`url`, `ctl`, `queue_counts`), for
    a cluster: the front's URL, commands on a live node."""

    def __init__(self, cluster: PrivateRabbitCluster, front: ClusterFront) -> None:
        self.cluster, self.front = cluster, front

    @property
    def url(self) -> str:
        return self.front.url

    def ctl(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        return self.cluster.ctl(*args, timeout_s=timeout_s)

    def queue_counts(self) -> dict[str, tuple[int, int]]:
        return self.cluster.queue_counts()

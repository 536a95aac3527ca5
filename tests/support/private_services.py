"""Private RabbitMQ, Redis and PostgreSQL+pgvector instances for tests that break them.

The developer's own services on the default ports are never touched: every instance here runs
on free ports with its own name, data and logs under a directory the caller owns, and is
stopped by the test session that started it.

- RabbitMQ: Debian's `rabbitmq-server` started straight from its sbin folder (the /usr/sbin
  wrapper re-runs itself as the `rabbitmq` user), node `sift-test-<port>@localhost`, its own
  config, env file, mnesia, logs, empty plugin list, Erlang cookie (HOME) and distribution
  port, and the advanced.config Sift ships (deploy/rabbitmq/): the tests run the broker
  settings production runs. It registers with the machine's epmd, shared and left alone.
- Redis: `redis-server` with `--save ''` and an append-only file, so a restart keeps the data
  unless asked to lose it (the directory wiped between stop and start).
- PostgreSQL: the embedded pgvector server (`sift_common.store.embedded`), which listens on a
  unix socket inside its data directory, so a stop and start keeps its URL.
"""

import os
import socket
import subprocess
import time
from pathlib import Path

from scripts.processes import Child, free_ports, wait_for
from sift_common.store.embedded import start_embedded_postgres, stop_embedded_postgres
from tests.conftest import ROOT

SHIPPED_ADVANCED_CONFIG = ROOT / "deploy" / "rabbitmq" / "advanced.config"
RABBIT_SBIN = sorted(Path("/usr/lib/rabbitmq/lib").glob("rabbitmq_server-*/sbin"))


class PrivateRabbit:
    def __init__(self, root: Path) -> None:
        if not RABBIT_SBIN:
            raise FileNotFoundError("rabbitmq-server is not installed (apt-get install it)")
        self.sbin = RABBIT_SBIN[-1]
        self.root = root
        self.port, self.dist_port = free_ports(2)
        self.node = f"sift-test-{self.port}@localhost"
        root.mkdir(parents=True, exist_ok=True)
        (root / "env.conf").write_text("")  # not /etc/rabbitmq/rabbitmq-env.conf
        (root / "enabled_plugins").write_text("")
        config = f"listeners.tcp.1 = 127.0.0.1:{self.port}\nlog.file.level = info\n"
        (root / "rabbitmq.conf").write_text(config)
        (root / "advanced.config").write_text(SHIPPED_ADVANCED_CONFIG.read_text())
        self.env = {
            **os.environ,
            "HOME": str(root),  # the Erlang cookie lives here, for the node and rabbitmqctl
            "RABBITMQ_CONF_ENV_FILE": str(root / "env.conf"),
            "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(root / "advanced.config"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(root / "rabbit.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        self.server = Child(
            "rabbitmq", [str(self.sbin / "rabbitmq-server")], root / "rabbitmq-server.log", self.env
        )

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def ctl(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        command = [str(self.sbin / "rabbitmqctl"), "-n", self.node, *args]
        return subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=timeout_s, check=False
        )

    def start(self, timeout_s: float = 90.0) -> float:
        """Start the node (keeping its data directory) and wait until it serves; seconds taken."""
        started = time.monotonic()
        self.server.start()
        self.await_startup(timeout_s)
        return time.monotonic() - started

    def await_startup(self, timeout_s: float = 90.0) -> None:
        # `await_startup` fails at once while the node has not registered with epmd yet.
        def up() -> bool:
            if not self.server.alive():
                raise RuntimeError(f"rabbitmq-server exited; see {self.server.log}")
            return self.ctl("await_startup", "--timeout", "30").returncode == 0

        wait_for(up, f"RabbitMQ node {self.node}", timeout_s, every_s=0.3)

    def stop(self) -> None:
        if self.server.alive():
            self.ctl("stop", timeout_s=60)
        self.server.stop(timeout_s=30)

    def restart_app(self) -> float:
        """`stop_app` + `start_app`: every connection dropped, queues recovered from disk."""
        started = time.monotonic()
        for command in ("stop_app", "start_app"):
            run = self.ctl(command, timeout_s=120)
            if run.returncode != 0:
                raise RuntimeError(f"rabbitmqctl {command}: {run.stdout}{run.stderr}")
        self.await_startup()
        return time.monotonic() - started

    def restart_node(self, down_s: float = 0.0) -> float:
        """Stop the whole node (VM included), stay down `down_s`, start it on the same data."""
        started = time.monotonic()
        self.stop()
        time.sleep(down_s)
        self.start()
        return time.monotonic() - started

    def queue_counts(self) -> dict[str, tuple[int, int]]:
        """Every queue's (ready, unacknowledged) messages."""
        run = self.ctl(
            "list_queues", "--quiet", "--no-table-headers",
            "name", "messages_ready", "messages_unacknowledged",
        )  # fmt: skip
        counts: dict[str, tuple[int, int]] = {}
        for line in run.stdout.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                counts[parts[0]] = (int(parts[1]), int(parts[2]))
        return counts


class PrivateRedis:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        [self.port] = free_ports(1)
        command = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data), "--save", "", "--appendonly", "yes",
            "--appendfsync", "everysec", "--daemonize", "no",
        ]  # fmt: skip
        self.server = Child("redis", command, root / "redis.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 30.0) -> float:
        started = time.monotonic()
        self.server.start()
        wait_for(self._pongs, f"Redis on :{self.port}", timeout_s, every_s=0.05)
        return time.monotonic() - started

    def stop(self) -> None:
        self.server.stop(timeout_s=30)  # SIGTERM: Redis writes its append-only file and exits

    def restart(self, *, lose_data: bool = False, down_s: float = 0.0) -> float:
        started = time.monotonic()
        self.stop()
        if lose_data:
            self.wipe()
        time.sleep(down_s)
        self.start()
        return time.monotonic() - started

    def wipe(self) -> None:
        """Delete the stopped server's data: it starts empty, as after losing its disk."""
        for path in sorted(self.data.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()

    def _pongs(self) -> bool:
        if not self.server.alive():
            raise RuntimeError(f"redis-server exited; see {self.server.log}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class PrivatePostgres:
    """The embedded server in `data_dir`. When run as root it runs as the `pgserver` user and
    opens traversal rights on the parents of `data_dir`: give it a directory of its own."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.admin_url = ""

    def start(self) -> float:
        started = time.monotonic()
        url = start_embedded_postgres(self.data_dir)
        if self.admin_url and url != self.admin_url:
            raise AssertionError(f"embedded PostgreSQL moved: {self.admin_url} → {url}")
        self.admin_url = url
        return time.monotonic() - started

    def stop(self) -> None:
        stop_embedded_postgres(self.data_dir)

    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

"""Create the vhost, the services' broker users and their permissions, idempotently: run
again, it converges on the same state (passwords set anew, permissions and topic permissions
replaced). Through `rabbitmqctl` on the broker's host (the management plugin may be off), or
through the management plugin's HTTP API from anywhere (a one-shot container in compose).

Passwords travel to `rabbitmqctl` on its standard input, never on its command line (which
every local user can read in the process list).
"""

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from sift_common.errors import ConfigError
from sift_common.messaging.privileges import BrokerUser, TopicPermission


class BrokerAdmin(Protocol):
    """What provisioning asks of the broker; `RabbitCtl` and `ManagementApi` do it."""

    def vhosts(self) -> set[str]: ...
    def add_vhost(self, vhost: str) -> None: ...
    def put_user(self, name: str, password: str) -> None:
        """Create the user, or set its password; either way without tags."""

    def set_permissions(
        self, vhost: str, user: str, configure: str, write: str, read: str
    ) -> None: ...

    def set_topic_permissions(
        self, vhost: str, user: str, topics: Sequence[TopicPermission]
    ) -> None:
        """Replace the user's topic permissions in the vhost with `topics`."""


@dataclass(frozen=True)
class RabbitCtl:
    """`rabbitmqctl` (with its node options) run as a child process."""

    command: tuple[str, ...] = ("rabbitmqctl",)
    env: Mapping[str, str] | None = None
    timeout_s: float = 120.0

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        try:
            run = subprocess.run(  # noqa: S603 - the operator's own rabbitmqctl
                [*self.command, *args],
                input=stdin,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(f"rabbitmqctl {args[0]}: {exc}") from exc
        if run.returncode != 0:
            raise ConfigError(f"rabbitmqctl {args[0]} failed: {(run.stderr or run.stdout).strip()}")
        return run.stdout

    def names(self, *args: str) -> set[str]:
        """The first column of a `list_*` command."""
        lines = self(*args, "--quiet", "--no-table-headers").splitlines()
        return {line.split()[0] for line in lines if line.strip()}

    def vhosts(self) -> set[str]:
        return self.names("list_vhosts")

    def add_vhost(self, vhost: str) -> None:
        self("add_vhost", vhost)

    def put_user(self, name: str, password: str) -> None:
        if name in self.names("list_users"):
            self("change_password", name, stdin=password)
        else:
            self("add_user", name, stdin=password)
        self("set_user_tags", name)

    def set_permissions(self, vhost: str, user: str, configure: str, write: str, read: str) -> None:
        self("set_permissions", "-p", vhost, user, configure, write, read)

    def set_topic_permissions(
        self, vhost: str, user: str, topics: Sequence[TopicPermission]
    ) -> None:
        self("clear_topic_permissions", "-p", vhost, user)
        for topic in topics:
            self(
                "set_topic_permissions", "-p", vhost, user, topic.exchange, topic.write, topic.read
            )


class ManagementApi:
    """The management plugin's HTTP API (every call an idempotent PUT, or a DELETE)."""

    def __init__(self, url: str, user: str, password: str, timeout_s: float = 30.0) -> None:
        self._client = httpx.Client(
            base_url=url.rstrip("/"), auth=(user, password), timeout=timeout_s
        )

    def close(self) -> None:
        self._client.close()

    def _call(
        self, method: str, path: str, body: object = None, *, missing_ok: bool = False
    ) -> Any:
        try:
            response = self._client.request(method, "/api/" + path, json=body)
        except httpx.HTTPError as exc:
            raise ConfigError(f"RabbitMQ management API {method} {path}: {exc}") from exc
        if missing_ok and response.status_code == 404:
            return None
        if response.is_error:
            detail = f"{response.status_code} {response.text[:200]}"
            raise ConfigError(f"RabbitMQ management API {method} {path}: {detail}")
        return response.json() if response.content else None

    def vhosts(self) -> set[str]:
        return {entry["name"] for entry in self._call("GET", "vhosts")}

    def add_vhost(self, vhost: str) -> None:
        self._call("PUT", f"vhosts/{_part(vhost)}", {})

    def put_user(self, name: str, password: str) -> None:
        self._call("PUT", f"users/{_part(name)}", {"password": password, "tags": ""})

    def set_permissions(self, vhost: str, user: str, configure: str, write: str, read: str) -> None:
        body = {"configure": configure, "write": write, "read": read}
        self._call("PUT", f"permissions/{_part(vhost)}/{_part(user)}", body)

    def set_topic_permissions(
        self, vhost: str, user: str, topics: Sequence[TopicPermission]
    ) -> None:
        path = f"topic-permissions/{_part(vhost)}/{_part(user)}"
        self._call("DELETE", path, missing_ok=True)
        for topic in topics:
            body = {"exchange": topic.exchange, "write": topic.write, "read": topic.read}
            self._call("PUT", path, body)


def _part(name: str) -> str:
    return quote(name, safe="")


@dataclass
class BrokerProvision:
    """One vhost, its administrator's full permissions, and a user per service."""

    admin: BrokerAdmin
    vhost: str
    done: list[str] = field(default_factory=list)

    def vhost_exists(self) -> None:
        if self.vhost not in self.admin.vhosts():
            self.admin.add_vhost(self.vhost)
            self.done.append(f"vhost {self.vhost} added")

    def administrator(self, name: str) -> None:
        """The user that declares the topology: everything, in this vhost only."""
        self.admin.set_permissions(self.vhost, name, ".*", ".*", ".*")
        self.done.append(f"{name}: full permissions on {self.vhost}")

    def user(self, user: BrokerUser, password: str) -> None:
        self.admin.put_user(user.name, password)  # no tags: no management UI, no policies
        self.admin.set_permissions(self.vhost, user.name, user.configure, user.write, user.read)
        self.admin.set_topic_permissions(self.vhost, user.name, user.topics)
        self.done.append(f"{user.name}: password, permissions and topic permissions set")


def provision_users(
    admin: BrokerAdmin,
    vhost: str,
    users: Sequence[BrokerUser],
    passwords: Mapping[str, str],
    *,
    administrator: str | None = None,
) -> list[str]:
    """The vhost, the administrator's permissions on it, and every user that has a password
    (a service without one is an error; `upstream` is optional). What was done, line by line."""
    missing = [u.service for u in users if u.service not in passwords and u.service != "upstream"]
    if missing:
        raise ConfigError(f"no broker password for {', '.join(missing)}")
    provision = BrokerProvision(admin, vhost)
    provision.vhost_exists()
    if administrator is not None:
        provision.administrator(administrator)
    for user in users:
        if user.service in passwords:
            provision.user(user, passwords[user.service])
    return provision.done

"""Create the vhost, the services' broker users and their permissions with `rabbitmqctl`
(the management plugin may be off), idempotently: run again, it converges on the same state
(passwords set anew, permissions and topic permissions replaced).

Passwords travel to `rabbitmqctl` on its standard input, never on its command line (which
every local user can read in the process list).
"""

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sift_common.errors import ConfigError
from sift_common.messaging.privileges import BrokerUser


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


@dataclass
class BrokerProvision:
    """One vhost, its administrator's full permissions, and a user per service."""

    ctl: RabbitCtl
    vhost: str
    done: list[str] = field(default_factory=list)

    def vhost_exists(self) -> None:
        if self.vhost not in self.ctl.names("list_vhosts"):
            self.ctl("add_vhost", self.vhost)
            self.done.append(f"vhost {self.vhost} added")

    def administrator(self, name: str) -> None:
        """The user that declares the topology: everything, in this vhost only."""
        self.ctl("set_permissions", "-p", self.vhost, name, ".*", ".*", ".*")
        self.done.append(f"{name}: full permissions on {self.vhost}")

    def user(self, user: BrokerUser, password: str) -> None:
        if user.name in self.ctl.names("list_users"):
            self.ctl("change_password", user.name, stdin=password)
        else:
            self.ctl("add_user", user.name, stdin=password)
        self.ctl("set_user_tags", user.name)  # none: no management UI, no policies
        self.ctl(
            "set_permissions", "-p", self.vhost, user.name,
            user.configure, user.write, user.read,
        )  # fmt: skip
        self.ctl("clear_topic_permissions", "-p", self.vhost, user.name)
        for topic in user.topics:
            self.ctl(
                "set_topic_permissions", "-p", self.vhost, user.name,
                topic.exchange, topic.write, topic.read,
            )  # fmt: skip
        self.done.append(f"{user.name}: password, permissions and topic permissions set")


def provision_users(
    ctl: RabbitCtl,
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
    provision = BrokerProvision(ctl, vhost)
    provision.vhost_exists()
    if administrator is not None:
        provision.administrator(administrator)
    for user in users:
        if user.service in passwords:
            provision.user(user, passwords[user.service])
    return provision.done

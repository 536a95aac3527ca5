"""`sift broker`: least privilege on RabbitMQ (docs/security.md).

    sift broker users                  each service user's permissions, as they would be set
    sift broker provision              the vhost, the users, their permissions, the topology

`provision` runs as the broker's administrator: `rabbitmqctl` (`--rabbitmqctl` for its path
and node options) or, with `--management-url`, the management plugin's HTTP API (as the user
of SIFT_RABBIT_URL) for the vhost and users; then SIFT_RABBIT_URL (an administrator's URL; its
vhost is replaced by `--vhost`) to declare every exchange, queue and binding. Each service's
password comes from SIFT_RABBIT_PASSWORD_<SERVICE> (SIFT_RABBIT_PASSWORD_UPSTREAM optional) or
from `--passwords-file`, a JSON object {"collector": "...", ...}. Run again at will: it
converges. Exit 1 when a step is refused (a queue of an older Sift: `sift queues migrate`),
2 when the settings are wrong or the broker cannot be reached.
"""

import shlex
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import typer

from sift_common.errors import ConfigError
from sift_common.messaging.broker import declare_topology
from sift_common.messaging.privileges import broker_users
from sift_common.messaging.provision import ManagementApi, RabbitCtl, provision_users
from sift_common.messaging.queues_cli import broker_settings, on_broker
from sift_common.security.passwords import read_passwords

app = typer.Typer(
    name="broker",
    help="Least privilege on RabbitMQ: a vhost and one user per service.",
    no_args_is_help=True,
)
PASSWORD_VARIABLE = "SIFT_RABBIT_PASSWORD_{}"  # noqa: S105 - a variable name


@app.command()
def users() -> None:
    """Print each service user's permissions and topic permissions."""
    _, topologies = broker_settings()
    for user in broker_users(topologies[0]):
        typer.echo(f"{user.name}\n  configure {user.configure}\n  write     {user.write}")
        typer.echo(f"  read      {user.read}")
        for topic in user.topics:
            typer.echo(f"  topic {topic.exchange}: write {topic.write} read {topic.read}")


@app.command()
def provision(
    vhost: Annotated[str, typer.Option(help="the vhost the services use")] = "sift",
    rabbitmqctl: Annotated[
        str, typer.Option(help="rabbitmqctl and its options, e.g. 'rabbitmqctl -n rabbit@host'")
    ] = "rabbitmqctl",
    management_url: Annotated[
        str | None,
        typer.Option(help="the management API instead of rabbitmqctl, e.g. http://rabbitmq:15672"),
    ] = None,
    passwords_file: Annotated[
        Path | None, typer.Option(help='JSON {"collector": "<password>", ...}')
    ] = None,
) -> None:
    """Create or update the vhost, the service users and the topology (idempotent)."""
    rabbit_url, topologies = broker_settings()
    admin_url = with_vhost(rabbit_url, vhost)
    users = broker_users(topologies[0])
    url = urlsplit(rabbit_url)
    administrator, password = unquote(url.username or "guest"), unquote(url.password or "")
    admin: RabbitCtl | ManagementApi = RabbitCtl(tuple(shlex.split(rabbitmqctl)))
    if management_url is not None:
        admin = ManagementApi(management_url, administrator, password)
    try:
        passwords = read_passwords([u.service for u in users], PASSWORD_VARIABLE, passwords_file)
        done = provision_users(admin, vhost, users, passwords, administrator=administrator)
        for line in done:
            typer.echo(line)
        for topology in topologies:
            on_broker(declare_topology(admin_url, topology))
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    finally:
        if isinstance(admin, ManagementApi):
            admin.close()
    typer.echo(f"topology declared in vhost {vhost}; services connect as sift-<service>", err=True)


def with_vhost(url: str, vhost: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))

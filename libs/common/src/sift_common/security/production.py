"""What `SIFT_ENV=production` refuses in connection URLs: the development passwords.

RabbitMQ's `guest`/`guest` (also what an AMQP URL without credentials means), compose's old
`sift`/`sift`, and the other passwords that ship as defaults. A Redis URL without a password
is only warned about (`redis_without_password`) until every deployment runs Redis with ACL
users; a PostgreSQL URL without a password may be peer or certificate authentication, which
is fine.
"""

from urllib.parse import unquote, urlsplit

DEFAULT_PASSWORDS = frozenset({"guest", "sift", "postgres", "password", "changeme", "secret"})


def default_password(variable: str, url: str) -> list[str]:
    """`["SIFT_X_URL: ..."]` when `url` carries a default password (or, for AMQP, none)."""
    parts = urlsplit(url)
    password = unquote(parts.password) if parts.password is not None else None
    if password is None and parts.scheme.startswith("amqp"):
        return [f"{variable}: no credentials, which RabbitMQ clients take as guest/guest"]
    if password is not None and password.lower() in DEFAULT_PASSWORDS:
        return [f"{variable}: the default password {password!r}"]
    return []


def redis_without_password(url: str) -> bool:
    return urlsplit(url).password is None

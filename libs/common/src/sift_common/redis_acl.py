"""Least privilege on Redis: an ACL user per service that uses Redis, limited to its own keys
and to the commands Sift sends (docs/security.md).

    collector  <ns>sift:dedup:*, sift:ratelimit*, sift:source-lock:*, sift:source-state:*,
               sift:source-cursor:* (content-hash claims, per-publisher rate windows, the
               sources' lease locks, states and cursors)
    analyzer   <ns>sift:lock:*, sift:pending:*, sift:result:* (work leases and their fences,
               digest follow-ups, cached results)

The archiver and the gateway do not use Redis. Every user gets reads, writes, key expiry,
scripts (the lease lock and the rate limiter run Lua, whose commands Redis checks against the
same ACL) and TIME, and none of `@dangerous` or `@admin` (FLUSHALL, CONFIG, KEYS, ACL,
DEBUG, SHUTDOWN, ...), nor flushing, killing or debugging scripts, nor functions, nor pub/sub
channels (`reset` leaves none).

`provision_redis_users` writes them with `ACL SETUSER <name> reset ...` (the whole rule set
each time, so a second run converges) and then persists them: `ACL SAVE` when Redis runs with
an `aclfile`, else `CONFIG REWRITE` when it has a config file; otherwise it says the users last
only until Redis restarts.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

USER_PREFIX = "sift-"
KEY_PATTERNS: dict[str, tuple[str, ...]] = {
    "collector": (
        "sift:dedup:*",
        "sift:ratelimit*",
        "sift:source-lock:*",
        "sift:source-state:*",
        "sift:source-cursor:*",
    ),
    "analyzer": ("sift:lock:*", "sift:pending:*", "sift:result:*"),
}
CATEGORIES = (
    "+@read",
    "+@write",
    "+@keyspace",
    "+@scripting",
    "+@transaction",
    "+@connection",
    "-@dangerous",
    "-@admin",
)
COMMANDS = ("+time", "-script|flush", "-script|kill", "-script|debug", "-function")


@dataclass(frozen=True)
class RedisUser:
    service: str
    keys: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{USER_PREFIX}{self.service}"


def redis_users(namespace: str = "") -> list[RedisUser]:
    return [
        RedisUser(service, tuple(namespace + pattern for pattern in patterns))
        for service, patterns in KEY_PATTERNS.items()
    ]


async def provision_redis_users(
    redis: Redis, users: list[RedisUser], passwords: Mapping[str, str]
) -> list[str]:
    """Create or reset every user (each needs a password); what was done, line by line."""
    missing = [user.service for user in users if not passwords.get(user.service)]
    if missing:
        raise ValueError(f"no Redis password for {', '.join(missing)}")
    done = []
    for user in users:
        await redis.acl_setuser(  # `reset` first: every rule of the user is replaced
            user.name,
            enabled=True,
            reset=True,
            passwords=[f"+{passwords[user.service]}"],
            keys=list(user.keys),
            categories=list(CATEGORIES),
            commands=list(COMMANDS),
        )
        done.append(f"{user.name}: keys {' '.join(user.keys)}")
    done.append(await _persist(redis))
    return done


async def _persist(redis: Redis) -> str:
    try:
        await redis.acl_save()
        return "saved to the ACL file"
    except ResponseError:
        pass  # no aclfile configured
    try:
        await redis.config_rewrite()
        return "saved to the config file (CONFIG REWRITE)"
    except ResponseError as exc:
        return f"NOT persisted ({exc}): run Redis with an aclfile, or provision at every start"

"""Sift's exception hierarchy, and how consumers treat each branch.

    SiftError                   base of every error Sift raises on purpose
    ├── ConfigError             a setting is missing or wrong: fail at start-up, name the variable
    ├── TransientError          may succeed later (dependency down, timeout, 429/5xx):
    │   │                       the message goes to the next delayed-retry queue
    │   └── OverloadedError     a dependency refused the work for capacity (429, or 503 with
    │                           `Retry-After` from a full queue): retried after that delay
    │                           without spending the message's retry budget
    ├── InvalidMessageError     the input can never succeed (undecodable, fails validation):
    │                           the message goes straight to the dead-letter queue with the reason
    └── LeaseLostError          a lock's lease expired or was taken while work ran: the work's
                                result must not be written (treated as transient)

Errors of the libraries underneath (Redis, PostgreSQL, the broker, HTTP, timeouts) are not
wrapped at every call site: `sift_common.classify` decides, in one place, which of them are
transient. Anything else escaping a handler is a bug: it is logged with its traceback and the
message is dead-lettered with the reason, never retried hot and never dropped.
"""


class SiftError(Exception):
    """Base of every error Sift raises on purpose."""


class ConfigError(SiftError):
    """A setting is missing or invalid; the message names the environment variable."""


class TransientError(SiftError):
    """A failure that may succeed if the same work is tried again later."""


class OverloadedError(TransientError):
    """A dependency is at capacity and said when to come back; not the message's fault."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InvalidMessageError(SiftError):
    """A message that can never be processed as it is."""


class LeaseLostError(TransientError):
    """The lease lock guarding a piece of work was lost before the work finished."""

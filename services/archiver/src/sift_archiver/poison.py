"""What a document the store refuses on its own is dead-lettered as.

Once bisection (`bisection.settle`) has a document failing alone, an error that says the input
is at fault (PostgreSQL refusing a value, the gateway refusing the text with a 4xx) becomes an
`UnstorableDocumentError`: an `InvalidMessageError`, so the consumer dead-letters the message at
once with the document id and the refusal as the reason. Any other error is left as it is: a bug
stays a bug, logged with its traceback.
"""

import asyncpg

from sift_common.errors import InvalidMessageError
from sift_common.gateway_client import GatewayRequestError

REFUSED_INPUT_STATUS = frozenset({400, 413, 422})
# PostgreSQL refusing a value: bad text or JSON, a number out of range, a vector of the wrong
# dimension (data exceptions); a violated CHECK or NOT NULL; an index row too large.
REFUSED_BY_STORE: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.ProgramLimitExceededError,
)


class UnstorableDocumentError(InvalidMessageError):
    """The store or the gateway refuses this document itself; retrying cannot help."""


def blame(document_id: str, error: Exception) -> Exception:
    """The error a document that failed alone is settled with."""
    refused = isinstance(error, REFUSED_BY_STORE) or (
        isinstance(error, GatewayRequestError) and error.status in REFUSED_INPUT_STATUS
    )
    if not refused:
        return error
    wrapped = UnstorableDocumentError(
        f"document {document_id} cannot be stored: {type(error).__name__}: {error}"
    )
    wrapped.__cause__ = error
    return wrapped

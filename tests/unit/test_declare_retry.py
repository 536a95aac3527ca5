"""`retry_cluster_not_formed`: a topology declaration that the broker refused with INTERNAL_ERROR
`cluster_not_formed` (a quorum queue whose Raft members elected no leader in time; seen on a
busy 2-core machine) is made again; any other error is not. The broker cannot be made to time
out a quorum queue's formation on cue, so FAKE declarations raise aiormq's error."""

import pytest
from aiormq.exceptions import ConnectionInternalError

from sift_common.messaging import broker
from sift_common.messaging.broker import DECLARE_ATTEMPTS, retry_cluster_not_formed

NOT_FORMED = (
    "INTERNAL_ERROR - Cannot declare quorum queue 't.analyzer.documents' in vhost '/' on node "
    "'rabbit@localhost' with leader on node 'rabbit@localhost': cluster_not_formed"
)


class FakeDeclaration:
    """FAKE: fails with `error` the first `failures` times."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker, "DECLARE_PAUSE_S", 0.0)


async def test_a_quorum_queue_not_formed_in_time_is_declared_again() -> None:
    declare = FakeDeclaration(DECLARE_ATTEMPTS - 1, ConnectionInternalError(NOT_FORMED))
    await retry_cluster_not_formed(declare)
    assert declare.calls == DECLARE_ATTEMPTS


async def test_it_gives_up_after_the_last_attempt() -> None:
    declare = FakeDeclaration(DECLARE_ATTEMPTS, ConnectionInternalError(NOT_FORMED))
    with pytest.raises(ConnectionInternalError, match="cluster_not_formed"):
        await retry_cluster_not_formed(declare)
    assert declare.calls == DECLARE_ATTEMPTS


@pytest.mark.parametrize(
    "error", [ConnectionInternalError("INTERNAL_ERROR - something else"), OSError("refused")]
)
async def test_other_errors_are_raised_at_once(error: Exception) -> None:
    declare = FakeDeclaration(1, error)
    with pytest.raises(type(error)):
        await retry_cluster_not_formed(declare)
    assert declare.calls == 1

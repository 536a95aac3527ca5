"""What a dedup claim attempt found, read from the value `SET NX GET` returned."""

from sift_collector.dedup import COMMITTED, PENDING, Claim, claim_of


def test_claim_outcomes() -> None:
    assert claim_of(None, "mine") is Claim.WON
    assert claim_of(PENDING + "theirs", "mine") is Claim.PENDING
    assert claim_of((COMMITTED + "theirs").encode(), "mine") is Claim.DUPLICATE
    assert claim_of("a-document-id", "mine") is Claim.DUPLICATE  # written before claim states


def test_a_retried_claim_that_finds_its_own_value_has_won() -> None:
    """redis-py retries a command whose reply was lost with its connection: the first run
    already set the claim, and the retry must not mistake it for another submitter's."""
    assert claim_of((PENDING + "mine").encode(), "mine") is Claim.WON

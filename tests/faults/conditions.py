"""When a fault strikes: conditions on what is in flight, polled every 10 ms."""

from dataclasses import dataclass

from tests.faults.feeding import FeedStats
from tests.faults.rig import Rig


@dataclass
class Probe:
    """Counters at the scenario's start, for strike conditions."""

    rig: Rig
    feed: FeedStats
    chat_base: int
    embed_base: int

    @property
    def chat_answered(self) -> int:
        return self.rig.chat.answered - self.chat_base

    @property
    def embed_answered(self) -> int:
        return self.rig.embed.answered - self.embed_base


def llm_calls_in_flight(probe: Probe) -> bool:
    return probe.rig.chat.open_calls >= 1 and probe.chat_answered >= 3


def llm_call_open(probe: Probe) -> bool:
    return probe.rig.chat.open_calls >= 1


def embedding_call_open(probe: Probe) -> bool:
    return probe.rig.embed.open_calls >= 1


def embedding_in_flight(probe: Probe) -> bool:
    return probe.rig.embed.open_calls >= 1 and probe.embed_answered >= 1


def feeding_in_flight(probe: Probe) -> bool:
    return probe.feed.open_requests >= 1 and probe.feed.accepted >= 5 and not probe.feed.done

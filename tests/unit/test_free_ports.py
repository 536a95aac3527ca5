"""`scripts.processes.free_ports`: ports for children that bind them later, drawn below the
kernel's ephemeral range so that no outgoing connection can take one meanwhile."""

import socket

import pytest

from scripts import processes
from scripts.processes import LOWEST_PORT, ephemeral_low, free_ports


def test_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    ports = free_ports(50)
    assert len(set(ports)) == 50
    assert all(LOWEST_PORT <= port < ephemeral_low() for port in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[0]))  # free indeed


def test_a_port_something_listens_on_is_never_handed_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with socket.socket() as other:
            other.bind(("127.0.0.1", 0))
            free = other.getsockname()[1]  # unbound again at once: free
        draws = iter([taken, taken, free])
        monkeypatch.setattr(processes, "ephemeral_low", lambda: 65_536)

        class Scripted:
            def randrange(self, low: int, high: int) -> int:
                return next(draws)

        monkeypatch.setattr(processes.random, "SystemRandom", Scripted)
        assert free_ports(1) == [free]


def test_the_range_falls_back_to_linuxs_default_when_unreadable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(processes, "EPHEMERAL_RANGE", processes.Path("/nonexistent/range"))
    assert ephemeral_low() == processes.EPHEMERAL_LOW

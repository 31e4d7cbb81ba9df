"""The harness's free_port: servers of a test must not lose their port to an outgoing
connection (CI once failed with 'bind: Address already in use' on a kernel-picked port)."""
import socket

from harness.servers import _ephemeral_range_start, free_port


def test_ports_are_below_the_ephemeral_range_distinct_and_bindable():
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= p < _ephemeral_range_start() for p in ports)
    for p in ports[:20]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))


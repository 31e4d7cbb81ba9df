"""Several pgcohered processes on one port (so_reuseport) with peer_id and [peers], as in
PgBouncer: a CancelRequest that lands on another process than its client's is sent on to
the right one, whichever process it lands on; keys of unknown peers, and keys a peer sent
on that are not the receiver's either, are dropped (no forwarding loop)."""
import os
import signal
import socket
import struct
import time
import urllib.request

import psycopg

from harness.servers import wait_until
from pool_helpers import error_fields, message, pooler_ini, read_messages, startup_packet

SLEEP = 30  # the statement a cancel must interrupt; the tests want its error within seconds


def start_peers(daemon_factory, db, count=2, peers=None):
    """`count` processes on one TCP port, each with its own Unix socket directory (its
    private address, as PgBouncer's docs set peers up) and peer_id 1..count. [peers] lists
    all of them; peers(i, dirs) may give process i other [peers] lines."""
    daemons, dirs, port = [], [], None
    for i in range(count):
        d = daemon_factory(databases=[db], start=False)
        port = port or d.port
        dirs.append(os.path.join(d.dir, f"peer-{port}-{i + 1}"))
        os.makedirs(dirs[-1], exist_ok=True)
        daemons.append(d)
    for i, d in enumerate(daemons):
        lines = (peers(i, dirs) if peers else None) or "\n".join(f"{j + 1} = host={dirs[j]}" for j in range(count))
        with open(d.config_path) as f:
            text = f.read().replace(f"listen_port = {d.port}", f"listen_port = {port}")
        text += pooler_ini(pool_mode="transaction", so_reuseport=1, peer_id=i + 1, unix_socket_dir=dirs[i],
                           log_connections=0, verbose=1)
        with open(d.config_path, "w") as f:
            f.write(text + "[peers]\n" + lines + "\n")
        d.port = port
        d.socket_dir = dirs[i]
        d.start(wait_for_port=False)
        wait_until(lambda: "pooler listening on unix socket" in d.log(), timeout=15, what="peer listening")
    return daemons


def metric(d, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{d.metrics_port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise KeyError(name)


def unix_connect(d):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(SLEEP + 10)
    s.connect(os.path.join(d.socket_dir, f".s.PGSQL.{d.port}"))
    return s


def login_on(d, db):
    """A raw client of process `d` (through its own Unix socket); (socket, pid, key)."""
    s = unix_connect(d)
    s.sendall(startup_packet("postgres", db))
    msgs = read_messages(s)
    assert msgs and msgs[-1][0] == b"Z", msgs
    pid, key = next(struct.unpack("!ii", body) for t, body in msgs if t == b"K")
    return s, pid, key


def cancel_request(pid, key):
    return struct.pack("!iiii", 16, 80877102, pid, key)


def send_cancel(sock, pid, key):
    """Sends a CancelRequest on a fresh connection and waits until the pooler closes it."""
    with sock:
        sock.sendall(cancel_request(pid, key))
        sock.settimeout(10)
        assert sock.recv(16) == b""


def sleep_and_cancel_through(client, pid, key, cancel_sock):
    """Runs pg_sleep(SLEEP) on `client`, cancels it through `cancel_sock`; the seconds it
    took and the SQLSTATE that came back."""
    client.sendall(message(b"Q", f"SELECT pg_sleep({SLEEP})".encode() + b"\0"))
    time.sleep(0.5)  # the query reaches PostgreSQL
    start = time.monotonic()
    send_cancel(cancel_sock, pid, key)
    msgs = read_messages(client)
    elapsed = time.monotonic() - start
    errors = [error_fields(b)["C"] for t, b in msgs if t == b"E"]
    assert msgs[-1][0] == b"Z", msgs
    return elapsed, errors


def test_a_client_key_names_the_peer_that_handed_it_out(daemon_factory, new_db):
    a, b = start_peers(daemon_factory, new_db)
    for d, peer_id in ((a, 1), (b, 2)):
        s, pid, key = login_on(d, new_db)
        s.close()
        assert pid > 0 and (pid >> 16) & 0x3FFF == peer_id, hex(pid)


def test_a_cancel_landing_on_the_other_process_is_forwarded_to_the_clients_one(daemon_factory, new_db):
    a, b = start_peers(daemon_factory, new_db)
    for owner, other in ((a, b), (b, a)):
        client, pid, key = login_on(owner, new_db)
        with client:
            elapsed, errors = sleep_and_cancel_through(client, pid, key, unix_connect(other))
        assert errors == ["57014"], errors
        assert elapsed < 5, elapsed
        # Counted once the peer has closed the forwarded request's connection.
        wait_until(lambda: metric(other, "pgcohere_peer_cancels_forwarded_total") == 1, timeout=5, what="counted")
        assert "cancel request forwarded to peer" in other.log()
        assert metric(owner, "pgcohere_peer_cancels_dropped_total") == 0


def test_a_cancel_landing_on_the_clients_own_process_is_handled_there(daemon_factory, new_db):
    a, b = start_peers(daemon_factory, new_db)
    for owner in (a, b):
        client, pid, key = login_on(owner, new_db)
        with client:
            elapsed, errors = sleep_and_cancel_through(client, pid, key, unix_connect(owner))
        assert errors == ["57014"] and elapsed < 5, (errors, elapsed)


def test_cancels_through_the_shared_port_reach_the_client_wherever_they_land(daemon_factory, new_db):
    # The kernel picks the process for each connection; every cancel must work either way.
    a, b = start_peers(daemon_factory, new_db)
    for round_ in range(4):
        client, pid, key = login_on((a, b)[round_ % 2], new_db)
        with client:
            via_port = socket.create_connection(("127.0.0.1", a.port), timeout=10)
            elapsed, errors = sleep_and_cancel_through(client, pid, key, via_port)
        assert errors == ["57014"] and elapsed < 5, (round_, errors, elapsed)


def test_a_key_of_a_peer_not_in_peers_is_dropped_quietly(daemon_factory, new_db):
    a, b = start_peers(daemon_factory, new_db)
    client, pid, key = login_on(a, new_db)
    with client:
        unknown = (pid & 0xFFFF) | (77 << 16)  # peer 77 is not in [peers]
        client.sendall(message(b"Q", b"SELECT pg_sleep(1.5)\0"))
        time.sleep(0.3)
        send_cancel(unix_connect(b), unknown, key)
        msgs = read_messages(client)
        assert [t for t, _ in msgs if t == b"E"] == [], msgs  # the query ran to its end
    assert "cancel request for peer 77, which is not in [peers]: dropped" in b.log()
    assert metric(b, "pgcohere_peer_cancels_dropped_total") == 1
    assert metric(b, "pgcohere_peer_cancels_forwarded_total") == 0
    assert a.proc.poll() is None and b.proc.poll() is None


def test_a_forwarded_key_that_is_not_the_receivers_is_not_forwarded_again(daemon_factory, new_db):
    # Process 2's [peers] says peer 1 is process 2 itself (a mistake): it sends process 1's
    # key to itself once, sees a forwarded key that is not its own, and drops it.
    def wrong(i, dirs):
        return f"1 = host={dirs[1]}\n2 = host={dirs[1]}" if i == 1 else None
    a, b = start_peers(daemon_factory, new_db, peers=wrong)
    client, pid, key = login_on(a, new_db)
    with client:
        send_cancel(unix_connect(b), pid, key)
        wait_until(lambda: "not this one (2): dropped" in b.log(), timeout=10, what="the loop cut")
        time.sleep(0.5)
    assert b.log().count("cancel request forwarded to peer 1") == 1
    assert b.log().count("not this one (2): dropped") == 1
    assert metric(b, "pgcohere_peer_cancels_forwarded_total") == 1
    assert metric(b, "pgcohere_peer_cancels_dropped_total") == 1


def test_show_peers_lists_the_peers_section(daemon_factory, new_db):
    a, b = start_peers(daemon_factory, new_db)
    with psycopg.connect(f"host={a.socket_dir} port={a.port} dbname=pgcohere user=admin", autocommit=True) as c:
        rows = c.execute("SHOW PEERS").fetchall()
        assert rows == [(1, a.socket_dir, a.port, 20), (2, b.socket_dir, b.port, 20)]
        pools = c.execute("SHOW PEER_POOLS").fetchall()
        assert [r[0] for r in pools] == [1, 2]


def test_a_draining_peer_still_takes_cancels_forwarded_for_its_clients(daemon_factory, new_db):
    # Rolling restart of a peered process: it closes its TCP socket but keeps its Unix one,
    # where the other process forwards cancels for its remaining clients.
    a, b = start_peers(daemon_factory, new_db)
    client, pid, key = login_on(a, new_db)
    with client:
        a.proc.send_signal(signal.SIGINT)
        wait_until(lambda: "the Unix socket stays open for peers" in a.log(), timeout=10, what="drain")
        elapsed, errors = sleep_and_cancel_through(client, pid, key, unix_connect(b))
        assert errors == ["57014"] and elapsed < 5, (errors, elapsed)
        assert a.proc.poll() is None
    a.proc.wait(timeout=10)
    assert a.proc.returncode == 0

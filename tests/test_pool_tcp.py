"""TCP options of the pooler's sockets (PgBouncer's tcp_keepalive, tcp_keepidle,
tcp_keepintvl, tcp_keepcnt): seen from outside with ss(8), on the connection from a client
and on the server connection to PostgreSQL."""
import re
import shutil
import subprocess

import pytest

from harness.servers import wait_until
from pool_helpers import connect, start_pooler


def keepalive_timers(port, side):
    """Seconds left on the keepalive timers of established TCP sockets whose `side` port
    ("sport" or "dport") is `port`; None for a socket without a keepalive timer. Waits while
    a socket shows its retransmission timer instead (data not acknowledged yet)."""
    def sample():
        out = subprocess.run(["ss", "-tnoH", "state", "established", f"( {side} = :{port} )"],
                             capture_output=True, text=True, check=True).stdout
        if "timer:(on," in out:
            return None
        timers = []
        for line in out.splitlines():
            m = re.search(r"timer:\(keepalive,(?:(\d+)min)?(?:([\d.]+)sec)?(?:([\d.]+)ms)?", line)
            if not m:
                timers.append(None)
                continue
            minutes, seconds, millis = m.groups()
            timers.append(int(minutes or 0) * 60 + float(seconds or 0) + float(millis or 0) / 1000)
        return timers
    return wait_until(sample, timeout=10, interval=0.05, what=f"sockets with {side} {port} acknowledged")


@pytest.fixture(autouse=True)
def need_ss():
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) not installed")


def test_keepalive_settings_reach_client_and_server_sockets(daemon_factory, pg, new_db):
    d = start_pooler(daemon_factory, new_db, tcp_keepidle=7, tcp_keepintvl=2, tcp_keepcnt=3,
                     tcp_user_timeout=10000)
    with connect(d, new_db) as c:
        c.execute("SELECT 1")
        client_side = keepalive_timers(d.port, "sport")  # the pooler's end of the client connection
        server_side = keepalive_timers(pg.port, "dport")  # every connection to PostgreSQL (ours among them)
    assert client_side and all(t is not None and t <= 7 for t in client_side), client_side
    # The pooler's server connections idle with a 7 s timer; psycopg's own test connections
    # (if any) keep the system's 2 hours or have none.
    assert any(t is not None and t <= 7 for t in server_side), server_side


def test_tcp_keepalive_0_turns_keepalive_off(daemon_factory, pg, new_db):
    d = start_pooler(daemon_factory, new_db, tcp_keepalive=0, tcp_keepidle=7)
    with connect(d, new_db) as c:
        c.execute("SELECT 1")
        client_side = keepalive_timers(d.port, "sport")
    assert client_side and all(t is None for t in client_side), client_side

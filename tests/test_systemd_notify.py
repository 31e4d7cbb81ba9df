"""pgcohered under a fake systemd: READY=1 after start, WATCHDOG=1 keep-alives,
RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 on SIGTERM."""
import os
import signal
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness.servers import wait_until  # noqa: E402


class NotifySocket:
    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.messages = []

    def drain(self):
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    def seen(self, needle, after=0):
        return any(needle in m for m in self.drain()[after:])

    def close(self):
        self.sock.close()
        os.unlink(self.path)


def test_notify_protocol(daemon_factory, new_db, workdir, monkeypatch):
    sd = NotifySocket(os.path.join(workdir, f"notify-{os.getpid()}"))
    monkeypatch.setenv("NOTIFY_SOCKET", sd.path)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # keep-alive every 100 ms
    try:
        d = daemon_factory(databases=[new_db])
        wait_until(lambda: sd.seen("READY=1"), what="READY=1")
        ready = next(m for m in sd.messages if "READY=1" in m)
        assert f"MAINPID={d.pid}" in ready
        wait_until(lambda: sum(m == "WATCHDOG=1" for m in sd.drain()) >= 3, what="watchdog keep-alives")

        mark = len(sd.drain())
        d.kill(signal.SIGHUP)
        wait_until(lambda: sd.seen("READY=1", mark), what="READY=1 after reload")
        after = sd.messages[mark:]
        reloading = next(i for i, m in enumerate(after) if "RELOADING=1" in m)
        assert any("READY=1" in m for m in after[reloading + 1:])
        assert "MONOTONIC_USEC=" in after[reloading]

        d.kill(signal.SIGTERM)
        assert d.proc.returncode == 0
        assert sd.seen("STOPPING=1")
    finally:
        sd.close()

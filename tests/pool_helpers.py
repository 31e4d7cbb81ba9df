"""Helpers for the pooler's end-to-end tests: a daemon in front of one test database,
client connections through it, raw protocol sockets."""
import socket
import struct
import threading

import psycopg


def pooler_ini(**settings):
    """[pgcohered] lines for daemon_factory's extra_ini."""
    lines = ["[pgcohered]"]
    lines += [f"{k} = {v}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


def start_pooler(daemon_factory, db, **settings):
    settings.setdefault("pool_mode", "transaction")
    settings.setdefault("log_connections", 0)
    auth_type = settings.pop("auth_type", None)
    d = daemon_factory(databases=[db], extra_ini=pooler_ini(**settings), start=False)
    if auth_type:  # the shared config says trust; a key may not repeat
        with open(d.config_path) as f:
            text = f.read()
        with open(d.config_path, "w") as f:
            f.write(text.replace("auth_type = trust", f"auth_type = {auth_type}"))
    return d.start()


def dsn(daemon, db, user="postgres", **extra):
    params = f"host=127.0.0.1 port={daemon.port} dbname={db} user={user}"
    for k, v in extra.items():
        params += f" {k}={v}"
    return params


def connect(daemon, db, autocommit=True, **kw):
    return psycopg.connect(dsn(daemon, db), autocommit=autocommit, **kw)


def startup_packet(user="postgres", database="postgres", **params):
    body = struct.pack("!i", 196608)
    for k, v in dict(user=user, database=database, **params).items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


def message(type_byte, body=b""):
    return type_byte + struct.pack("!i", len(body) + 4) + body


def read_messages(sock, until=b"Z", limit=1000):
    """Reads messages until one of type `until` (inclusive) or EOF; returns [(type, body)]."""
    out, buf = [], b""
    while len(out) < limit:
        while len(buf) >= 5:
            t, n = buf[:1], struct.unpack("!i", buf[1:5])[0]
            if len(buf) < n + 1:
                break
            out.append((t, buf[5:n + 1]))
            buf = buf[n + 1:]
            if t == until:
                return out
        chunk = sock.recv(65536)
        if not chunk:
            return out
        buf += chunk
    return out


def raw_login(port, db, user="postgres"):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(startup_packet(user, db))
    msgs = read_messages(s)
    assert msgs and msgs[-1][0] == b"Z", msgs
    return s, msgs


def error_fields(body):
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode()
    return fields


def pooler_via(daemon_factory, db, target_port, pg_port, **settings):
    """A pooler whose [databases] entry for `db` points at 127.0.0.1:target_port (a Relay)."""
    settings.setdefault("pool_mode", "transaction")
    d = daemon_factory(databases=[db], extra_ini=pooler_ini(**settings), start=False)
    with open(d.config_path) as f:
        text = f.read()
    old = f"port={pg_port} dbname={db} "
    assert old in text
    with open(d.config_path, "w") as f:
        f.write(text.replace(old, f"port={target_port} dbname={db} "))
    return d.start()


class Relay:
    """A TCP relay in front of PostgreSQL, for faults the real server cannot be made to
    show on demand:
    - break_existing(): current connections die silently; the pooler learns it only when it
      next sends something (then both sides are closed), like a connection whose NAT
      entry or peer vanished;
    - hold_cancels(): a CancelRequest is delivered, but the pooler's cancel connection is
      kept open after PostgreSQL closed its side, until release_cancels();
    - delay_cancel_requests(): a CancelRequest waits in the relay, before PostgreSQL sees
      it, until release_cancel_requests() (a cancel that arrives late, after its query ended);
      cancel_requests counts the ones that reached the relay;
    - hold_replies(text): what PostgreSQL sends on the connections that sent or next send
      `text` waits in the relay until release_replies() (a query that has run, whose answer
      the pooler has not seen yet; or the notifications of the LISTEN connection);
    - sent(text): how many times the pooler sent bytes containing `text` to PostgreSQL."""

    CANCEL = struct.pack("!ii", 16, 80877102)

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.pairs = []
        self.lock = threading.Lock()
        self.holding = False
        self.released = threading.Event()
        self.replies = threading.Event()
        self.replies.set()
        self.requests = threading.Event()
        self.requests.set()
        self.cancel_requests = 0
        self.hold_text = None
        self.sent_log = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.target_port))
            pair = {"broken": False, "cancel": False, "sent": b""}
            with self.lock:
                self.pairs.append(pair)
            threading.Thread(target=self._pump, args=(pair, down, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(pair, up, down, False), daemon=True).start()

    def _pump(self, pair, src, dst, from_pooler):
        first = from_pooler
        try:
            while True:
                data = src.recv(65536)
                if not data or (from_pooler and pair["broken"]):
                    break
                if first and data.startswith(self.CANCEL):
                    pair["cancel"] = True
                    with self.lock:
                        self.cancel_requests += 1
                    self.requests.wait(60)
                first = False
                if from_pooler:
                    with self.lock:
                        self.sent_log.append(data)
                        pair["sent"] = (pair["sent"] + data)[-65536:]
                        if self.hold_text and self.hold_text in data:
                            pair["hold"] = True
                elif pair.get("hold"):
                    self.replies.wait(60)
                dst.sendall(data)
        except OSError:
            pass
        if pair["cancel"] and not from_pooler and self.holding:
            self.released.wait(60)  # PostgreSQL is done with it; the pooler is not told yet
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def break_existing(self):
        with self.lock:
            for p in self.pairs:
                p["broken"] = True

    def hold_cancels(self):
        self.released.clear()
        self.holding = True

    def release_cancels(self):
        self.released.set()

    def delay_cancel_requests(self):
        self.requests.clear()

    def release_cancel_requests(self):
        self.requests.set()

    def hold_replies(self, text):
        """Holds what PostgreSQL sends on every connection that has sent, or will send, `text`."""
        with self.lock:
            self.hold_text = text.encode()
            for p in self.pairs:
                if self.hold_text in p["sent"]:
                    p["hold"] = True
        self.replies.clear()

    def release_replies(self):
        with self.lock:
            self.hold_text = None
            for p in self.pairs:
                p["hold"] = False
        self.replies.set()

    def sent(self, text):
        with self.lock:
            return sum(chunk.count(text.encode()) for chunk in self.sent_log)

    def close(self):
        self.listener.close()
        self.released.set()
        self.replies.set()
        self.break_existing()

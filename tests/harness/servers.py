"""Start and stop private servers on loopback: PostgreSQL 15 clusters, Redis, pgcohered.

Everything runs as the calling user, except PostgreSQL, which refuses root: as root it
runs as the `postgres` system user. Every process is stopped by its own PID.
"""
import contextlib
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PG_BIN = "/usr/lib/postgresql/15/bin"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DAEMON_BIN = os.environ.get("PGCOHERED", os.path.join(REPO, "build", "daemon", "pgcohered"))


_ports_handed_out = set()


def _ephemeral_range_start():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A TCP port nobody listens on right now, below the kernel's ephemeral range.

    Outgoing connections (the daemon's to PostgreSQL and Redis, every psql) take their
    local port from the ephemeral range: a port the kernel picked there could be taken by
    one of them between this call and the server's bind ("Address already in use")."""
    high = _ephemeral_range_start()
    low = max(1024, high - 16384)
    pick = random.SystemRandom()
    for _ in range(1000):
        port = pick.randrange(low, high)
        if port in _ports_handed_out:
            continue
        with contextlib.closing(socket.socket()) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_handed_out.add(port)
        return port
    raise RuntimeError(f"no free TCP port in {low}-{high - 1}")


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Polls predicate() until it returns a truthy value; raises TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# `make check-asan` runs the daemon under ASan, whose shadow memory and quarantine of freed
# blocks (256 MB) make RSS say nothing about the daemon's own memory: RSS bounds skip there.
SANITIZED = os.environ.get("PGCOHERE_SANITIZE") == "1"


def rss_mb(pid):
    """A process's resident memory (VmRSS) in MiB; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except FileNotFoundError:
        pass
    return 0.0


def port_open(port, host="127.0.0.1"):
    with contextlib.closing(socket.socket()) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _pg_user():
    """(uid, gid) PostgreSQL runs as, or None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    pw = pwd.getpwnam("postgres")
    return pw.pw_uid, pw.pw_gid


def _run_as_pg(argv, **kw):
    ids = _pg_user()
    if ids:
        argv = ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}", "--init-groups", "--"] + argv
    return subprocess.run(argv, check=True, **kw)


def make_secret_file(directory, name="secret"):
    """A random signing secret readable only by the PostgreSQL user (and root)."""
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    os.chmod(path, 0o600)
    ids = _pg_user()
    if ids:
        os.chown(path, *ids)
    return path


class PgCluster:
    """A private PostgreSQL 15 cluster listening on 127.0.0.1:port and a socket in its dir."""

    def __init__(self, base_dir, port=None, preload=True, secret_file=None, settings=None):
        self.dir = base_dir
        self.datadir = os.path.join(base_dir, "data")
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.preload = preload
        self.secret_file = secret_file
        self.settings = dict(settings or {})
        self.logfile = os.path.join(base_dir, "postgres.log")

    def init(self):
        os.makedirs(self.dir, exist_ok=True)
        ids = _pg_user()
        if ids:
            os.chown(self.dir, *ids)
        _run_as_pg([f"{PG_BIN}/initdb", "-D", self.datadir, "-U", "postgres", "-A", "trust",
                    "--no-sync", "-E", "UTF8", "--locale=C"], stdout=subprocess.DEVNULL)
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": self.port,
            "unix_socket_directories": f"'{self.dir}'",
            "max_connections": 300,
            "fsync": "off",
            "logging_collector": "off",
            "log_min_messages": "warning",
        }
        if self.preload:
            conf["shared_preload_libraries"] = "'pgcohere'"
        if self.secret_file:
            conf["pgcohere.secret_file"] = f"'{self.secret_file}'"
        conf.update(self.settings)
        with open(os.path.join(self.datadir, "postgresql.auto.conf"), "a") as f:
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        return self

    def pg_ctl(self, *args):
        _run_as_pg([f"{PG_BIN}/pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60", *args],
                   stdout=subprocess.DEVNULL)

    def start(self):
        self.pg_ctl("start")
        return self

    def stop(self, mode="fast"):
        if os.path.exists(os.path.join(self.datadir, "postmaster.pid")):
            self.pg_ctl("stop", "-m", mode)

    def restart(self, mode="fast"):
        self.pg_ctl("restart", "-m", mode)

    def postmaster_pid(self):
        with open(os.path.join(self.datadir, "postmaster.pid")) as f:
            return int(f.readline())

    def dsn(self, dbname="postgres", user="postgres"):
        return f"host={self.host} port={self.port} dbname={dbname} user={user}"

    def connect(self, dbname="postgres", user="postgres", autocommit=True, **kw):
        import psycopg
        return psycopg.connect(self.dsn(dbname, user), autocommit=autocommit, **kw)

    def psql(self, sql, dbname="postgres", user="postgres"):
        """Runs SQL with psql; returns its unaligned, tuples-only output."""
        out = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-d", self.dsn(dbname, user),
                              "-c", sql], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def remove(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    """A private redis-server on 127.0.0.1:port, no persistence unless asked."""

    def __init__(self, base_dir, port=None, extra_args=()):
        self.dir = base_dir
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.proc = None
        self.logfile = os.path.join(base_dir, f"redis-{self.port}.log")

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--logfile", self.logfile, *self.extra_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self._ping(), timeout=10, what=f"redis on port {self.port}")
        return self

    def _ping(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.proc.returncode}, see {self.logfile}")
        try:
            return self.client().ping()
        except Exception:
            return False

    def client(self, **kw):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)

    def stop(self):
        self.kill(signal.SIGTERM)


class Daemon:
    """pgcohered with a generated config; ready when its listen port accepts."""

    def __init__(self, base_dir, config_text, port):
        self.dir = base_dir
        self.port = port
        self.config_path = os.path.join(base_dir, f"pgcohered-{port}.ini")
        self.log_path = os.path.join(base_dir, f"pgcohered-{port}.log")
        self.proc = None
        os.makedirs(base_dir, exist_ok=True)
        with open(self.config_path, "w") as f:
            f.write(config_text)

    @property
    def pid(self):
        return self.proc.pid

    def start(self, wait_for_port=True):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([DAEMON_BIN, "--config", self.config_path], stdout=log, stderr=log)
        log.close()
        if wait_for_port:
            wait_until(self._ready, timeout=15, what=f"pgcohered ready (log: {self.log_path})")
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"pgcohered exited with {self.proc.returncode}:\n{self.log()}")
        # The log is appended to across restarts: only this process's line counts.
        return re.search(rf"\[{self.proc.pid}\] LOG pgcohered \S+ ready \(config ", self.log())

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
                self.proc.wait(timeout=15)

    def stop(self):
        """SIGTERM, then SIGKILL if it has not exited within 15 s (the test that asked
        for a graceful stop has already failed by then; cleanup must still finish)."""
        try:
            self.kill(signal.SIGTERM)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)


def daemon_config(port, pg, databases, redis_url, secret_file, metrics_port=0, extra_ini=""):
    """pgcohered ini for `databases` on the cluster `pg`; extra_ini is appended (sections
    may repeat, keys may not)."""
    lines = ["[databases]"]
    lines += [f"{db} = host={pg.host} port={pg.port} dbname={db} user=postgres" for db in databases]
    lines += ["[pgcohered]", "listen_addr = 127.0.0.1", f"listen_port = {port}", "auth_type = trust",
              "admin_users = admin", "stats_users = stats", f"metrics_port = {metrics_port}"]
    if redis_url:
        lines += ["[redis]", f"url = {redis_url}"]
    lines += ["[invalidation]", f"secret_file = {secret_file}"]
    return "\n".join(lines) + "\n" + extra_ini + "\n"


def temp_dir(prefix):
    """A private directory the PostgreSQL user can enter."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    return d

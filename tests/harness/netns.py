"""Servers behind a faultable link: a network namespace joined to the root namespace by a
veth pair (10.x addresses), with PostgreSQL or Redis inside it, and the faults the
reliability tests put on that link: packet loss, a partition and half-open connections
(iptables inside the namespace), and latency (tc netem where the kernel has it, otherwise
harness/delay_relay.py in front of the server). Needs root and `ip netns`."""
import os
import re
import signal
import subprocess
import sys

from harness.servers import PG_BIN, PgCluster, RedisServer, _pg_user, free_port, port_open, wait_until

_HERE = os.path.dirname(os.path.abspath(__file__))


def run(*argv, check=True):
    return subprocess.run(list(argv), check=check, capture_output=True, text=True)


def unavailable_reason():
    """Why these tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "iptables", "ss"):
        if run("sh", "-c", f"command -v {tool}", check=False).returncode != 0:
            return f"`{tool}` is not installed (scripts/install-deps.sh installs it)"
    probe = f"pgcprobe{os.getpid()}"
    made = run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` fails: {made.stderr.strip()}"
    try:
        rule = run("ip", "netns", "exec", probe, "iptables", "-A", "INPUT", "-m", "statistic", "--mode", "random",
                   "--probability", "0.05", "-j", "DROP", check=False)
        if rule.returncode != 0:
            return f"iptables does not work in a namespace: {rule.stderr.strip()}"
    finally:
        run("ip", "netns", "del", probe, check=False)
    return None


def netem_available():
    """True when `tc qdisc ... netem` works (the sch_netem module is there)."""
    name = f"pgcnetem{os.getpid() % 10000}"
    if run("ip", "link", "add", name, "type", "dummy", check=False).returncode != 0:
        return False
    try:
        return run("tc", "qdisc", "add", "dev", name, "root", "netem", "delay", "1ms", check=False).returncode == 0
    finally:
        run("ip", "link", "del", name, check=False)


class Link:
    """Namespace `ns` whose end of the veth pair is `ns_addr`; the root namespace's end is
    `root_addr`. Every rule this class adds sits inside the namespace, on its veth only, so
    loopback and Unix sockets (what the tests use to look at the servers) are untouched."""

    def __init__(self, tag, subnet):
        suffix = os.getpid() % 100000
        self.ns = f"pgc{tag}{suffix}"
        self.root_if = f"pgc{tag}{suffix}r"[:15]
        self.ns_if = f"pgc{tag}{suffix}n"[:15]
        self.root_addr = f"{subnet}.1"
        self.ns_addr = f"{subnet}.2"
        self.netem = False

    def up(self):
        run("ip", "netns", "add", self.ns)
        run("ip", "link", "add", self.root_if, "type", "veth", "peer", "name", self.ns_if)
        run("ip", "link", "set", self.ns_if, "netns", self.ns)
        run("ip", "addr", "add", f"{self.root_addr}/24", "dev", self.root_if)
        run("ip", "link", "set", self.root_if, "up")
        self.exec("ip", "addr", "add", f"{self.ns_addr}/24", "dev", self.ns_if)
        self.exec("ip", "link", "set", self.ns_if, "up")
        self.exec("ip", "link", "set", "lo", "up")
        return self

    def down(self):
        run("ip", "link", "del", self.root_if, check=False)
        run("ip", "netns", "del", self.ns, check=False)

    def exec(self, *argv, check=True):
        return run("ip", "netns", "exec", self.ns, *argv, check=check)

    def prefix(self):
        return ["ip", "netns", "exec", self.ns]

    # ---- faults ----

    def _iptables(self, *rule):
        self.exec("iptables", "-A", "INPUT", "-i", self.ns_if, *rule, "-j", "DROP")
        self.exec("iptables", "-A", "OUTPUT", "-o", self.ns_if, *rule, "-j", "DROP")

    def lose(self, probability):
        """Drops each packet, both ways, with this probability."""
        self._iptables("-m", "statistic", "--mode", "random", "--probability", str(probability))

    def partition(self):
        """Drops every packet both ways: no RST, no ICMP; both ends just stop hearing."""
        self._iptables()

    def blackhole_connections(self, server_port):
        """Silently drops every packet of the TCP connections open to server_port now,
        both ways; new connections work. The peers of these connections are gone, as
        after a host's crash or a NAT table flush, without either side being told.
        Returns how many connections were cut."""
        out = self.exec("ss", "-Htn", "state", "established", f"( sport = :{server_port} )").stdout
        ports = sorted({int(m.group(1)) for m in re.finditer(r"\s\S+:(\d+)\s*$", out, re.M)})
        for p in ports:
            self.exec("iptables", "-A", "INPUT", "-i", self.ns_if, "-p", "tcp", "--sport", str(p), "-j", "DROP")
            self.exec("iptables", "-A", "OUTPUT", "-o", self.ns_if, "-p", "tcp", "--dport", str(p), "-j", "DROP")
        return len(ports)

    def delay(self, ms):
        """netem delay on both ends of the veth (so `ms` is added each way)."""
        run("tc", "qdisc", "replace", "dev", self.root_if, "root", "netem", "delay", f"{ms}ms")
        self.exec("tc", "qdisc", "replace", "dev", self.ns_if, "root", "netem", "delay", f"{ms}ms")

    def heal(self):
        self.exec("iptables", "-F", "INPUT")
        self.exec("iptables", "-F", "OUTPUT")
        run("tc", "qdisc", "del", "dev", self.root_if, "root", check=False)
        self.exec("tc", "qdisc", "del", "dev", self.ns_if, "root", check=False)


class Relay:
    """harness/delay_relay.py on 127.0.0.1:port in front of host:port."""

    def __init__(self, target_host, target_port, delay_ms):
        self.host = "127.0.0.1"
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, os.path.join(_HERE, "delay_relay.py"), str(self.port),
                                      target_host, str(target_port), str(delay_ms)])
        try:
            wait_until(lambda: port_open(self.port), timeout=10, what="delay relay listening")
        except Exception:
            self.stop()
            raise

    def delay_on(self):
        self.proc.send_signal(signal.SIGUSR1)

    def delay_off(self):
        self.proc.send_signal(signal.SIGUSR2)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class NetnsPgCluster(PgCluster):
    """A PgCluster whose postmaster runs inside link's namespace and listens on its
    address (TCP) and on a Unix socket in its directory (for the test's own look)."""

    def __init__(self, base_dir, link, **kw):
        settings = dict(kw.pop("settings", {}) or {})
        settings["listen_addresses"] = f"'{link.ns_addr}'"
        super().__init__(base_dir, settings=settings, **kw)
        self.link = link
        self.host = link.ns_addr

    def init(self):
        super().init()
        # initdb trusts only loopback; the daemon comes from the root namespace's end.
        with open(os.path.join(self.datadir, "pg_hba.conf"), "a") as f:
            f.write(f"host all all {self.link.root_addr}/32 trust\n")
        return self

    def pg_ctl(self, *args):
        argv = [f"{PG_BIN}/pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60", *args]
        ids = _pg_user()
        if ids:
            argv = ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}", "--init-groups", "--"] + argv
        subprocess.run(self.link.prefix() + argv, check=True, stdout=subprocess.DEVNULL)

    def local_dsn(self, dbname="postgres", user="postgres"):
        return f"host={self.dir} port={self.port} dbname={dbname} user={user}"

    def connect(self, dbname="postgres", user="postgres", autocommit=True, **kw):
        import psycopg
        return psycopg.connect(self.local_dsn(dbname, user), autocommit=autocommit, **kw)


class NetnsRedis(RedisServer):
    """A RedisServer inside link's namespace, on its address and on a Unix socket."""

    def __init__(self, base_dir, link, port=None, extra_args=()):
        super().__init__(base_dir, port=port, extra_args=extra_args)
        self.link = link
        self.socket = os.path.join(base_dir, "redis.sock")

    @property
    def url(self):
        return f"redis://{self.link.ns_addr}:{self.port}/0"

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        self.proc = subprocess.Popen(
            self.link.prefix() + ["redis-server", "--port", str(self.port), "--bind", self.link.ns_addr,
                                  "--unixsocket", self.socket, "--unixsocketperm", "700", "--protected-mode", "no",
                                  "--save", "",
                                  "--appendonly", "no", "--dir", self.dir, "--logfile", self.logfile,
                                  *self.extra_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self._ping(), timeout=10, what=f"redis in {self.link.ns} on port {self.port}")
        return self

    def client(self, **kw):
        import redis
        return redis.Redis(unix_socket_path=self.socket, **kw)

"""Private PostgreSQL, pgcohered and Debian's PgBouncer on loopback for a benchmark, with the
CPU time and memory of each process. Every server started here is stopped by its PID."""
import os
import resource
import pwd
import shutil
import signal
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests"))
from harness.servers import PgCluster, free_port, port_open, wait_until  # noqa: E402,F401 (free_port: re-exported)

DAEMON = os.environ.get("PGCOHERED", os.path.join(REPO, "build", "daemon", "pgcohered"))
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"

# PostgreSQL tuned for benchmarks on a small shared machine: durability off, room for
# 500 direct clients next to the poolers' server connections.
BENCH_PG_SETTINGS = {
    "max_connections": 700,
    "shared_buffers": "256MB",
    "synchronous_commit": "off",
}

SHARED = {  # the same values for both poolers
    "pool_mode": "transaction",
    "default_pool_size": 20,
    "max_client_conn": 2000,
    "auth_type": "trust",
    "max_prepared_statements": 0,
    "log_connections": 0,
    "log_disconnections": 0,
    "query_wait_timeout": 120,
}


def as_postgres(argv):
    """argv run as the postgres user (PostgreSQL and PgBouncer refuse root); setpriv execs,
    so the PID we hold is the server's own (for its CPU time)."""
    if os.geteuid() != 0:
        return argv
    pw = pwd.getpwnam("postgres")
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"] + argv


def give_to_postgres(*paths):
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for p in paths:
            os.chown(p, pw.pw_uid, pw.pw_gid)


def wait_port(port, timeout=20):
    wait_until(lambda: port_open(port), timeout=timeout, interval=0.05, what=f"a listener on port {port}")


def start_cluster(base, preload=False, secret_file=None, settings=None):
    """A private PostgreSQL 15 cluster under base/pg with BENCH_PG_SETTINGS (+ settings)."""
    pg = PgCluster(os.path.join(base, "pg"), preload=preload, secret_file=secret_file,
                   settings=dict(BENCH_PG_SETTINGS, **(settings or {})))
    return pg.init().start()


def write_ini(path, section, port, pg_port, extra=None, auth_file=None, dbname="postgres", more=""):
    """A pooler ini with SHARED (+ extra) in `section`; `more` is appended (other sections)."""
    settings = dict(SHARED, **(extra or {}))
    lines = ["[databases]", f"bench = host=127.0.0.1 port={pg_port} dbname={dbname} user=postgres",
             f"[{section}]", "listen_addr = 127.0.0.1", f"listen_port = {port}"]
    lines += [f"{k} = {v}" for k, v in settings.items()]
    if auth_file:
        lines.append(f"auth_file = {auth_file}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + more)


class Proc:
    def __init__(self, argv, log, port):
        self.log_path = log
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log)
        self.port = port
        try:
            wait_until(lambda: self.proc.poll() is not None or port_open(port), timeout=20, interval=0.05,
                       what=f"{argv[0]} on port {port}")
        finally:
            if self.proc.poll() is not None:
                self.log.close()
                with open(log, errors="replace") as f:
                    raise RuntimeError(f"{' '.join(argv)} exited with {self.proc.returncode}: {f.read()[-2000:]}")

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kb(self, field="VmRSS"):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class ProcGroup:
    """N pgcohered processes sharing one port (so_reuseport): measured as one pooler."""

    def __init__(self, procs):
        self.procs = procs
        self.port = procs[0].port

    def cpu_seconds(self):
        return sum(p.cpu_seconds() for p in self.procs)

    def rss_kb(self, field="VmRSS"):
        return sum(p.rss_kb(field) for p in self.procs)

    def stop(self):
        for p in self.procs:
            p.stop()


class Direct:
    """PostgreSQL itself as a target: a port, nothing of ours to measure."""

    def __init__(self, port):
        self.port = port


def machine_busy_seconds():
    """CPU seconds all cores spent not idle (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def start_ours(base, name, port, pg_port, processes=1, extra=None, dbname="postgres", more=""):
    """One pgcohered, or `processes` of them on one port with the pool size split among them
    (PgBouncer's so_reuseport deployment: each process has its own pools)."""
    extra = dict(extra or {})
    if processes > 1:
        extra.update(so_reuseport=1, default_pool_size=SHARED["default_pool_size"] // processes)
    ini = os.path.join(base, f"{name}.ini")
    write_ini(ini, "pgcohered", port, pg_port, extra, dbname=dbname, more=more)
    procs = []
    for i in range(processes):
        log = os.path.join(base, f"{name}-{i}.log")
        procs.append(Proc([DAEMON, ini], log, port))
        # The port answers once the first one listens.
        wait_until(lambda: b"pooler listening" in open(log, "rb").read(), timeout=20, interval=0.05,
                   what=f"{log}: pooler listening")
    return procs[0] if processes == 1 else ProcGroup(procs)


def start_pgbouncer(base, port, pg_port, dbname="postgres", extra=None):
    """Debian's PgBouncer with SHARED (+ extra; what 1.18 knows of it), trust auth, as postgres."""
    userlist = os.path.join(base, "userlist.txt")
    with open(userlist, "w") as f:
        f.write('"postgres" ""\n')
    ini = os.path.join(base, "pgbouncer.ini")
    write_ini(ini, "pgbouncer", port, pg_port, dict(extra or {}, unix_socket_dir=""), auth_file=userlist, dbname=dbname)
    with open(ini) as f:  # 1.18 does not know max_prepared_statements
        text = f.read().replace("max_prepared_statements = 0\n", "")
    with open(ini, "w") as f:
        f.write(text)
    give_to_postgres(base, ini, userlist)
    return Proc(as_postgres([PGBOUNCER, ini]), os.path.join(base, "pgbouncer.log"), port)


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def console_stats(port, user, console_db, database="bench"):
    """SHOW STATS of a pooler's console (PgBouncer's or ours): the row of `database` as
    {column: text}, or None when the console does not answer."""
    out = subprocess.run(["psql", "-X", "-A", "-F", "|", "-h", "127.0.0.1", "-p", str(port), "-U", user,
                          console_db, "-c", "SHOW STATS"], capture_output=True, text=True, timeout=30)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        return None
    header = lines[0].split("|")
    for line in lines[1:]:
        fields = dict(zip(header, line.split("|")))
        if fields.get("database") == database:
            return fields
    return None


def raise_fd_limit(need):
    """pgbench and each pooler hold one descriptor per client: raise the limit this process
    (and so its children, each counted on its own) may open. Where the hard limit cannot be
    raised (no CAP_SYS_RESOURCE, as in some containers), go up to it and say so."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, need)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (ValueError, OSError):
            print(f"bench: open-files limit {hard} (cannot be raised here) is below the {need} wanted; "
                  "the largest stages may fail to connect", file=sys.stderr)
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

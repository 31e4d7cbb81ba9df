"""pgbench side by side: pgcohered vs PgBouncer (Debian's, same settings) vs direct.

Runs, on a private PostgreSQL 15 cluster initialised at scale 10:
  * pgbench -S (select only) at -c 50 and -c 500: TPS, p50 and p99 latency;
  * pgbench -S -M prepared at -c 50 (pgcohered and direct; PgBouncer 1.18 cannot);
  * pgbench -S -C (new connection per transaction) at -c 50;
  * pgcohered's CPU time per transaction, and its resident memory with 1,000 idle clients.
Each case is repeated; the tables report medians. Every server it starts is stopped by PID.
"""
import argparse
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PG_BIN = "/usr/lib/postgresql/15/bin"
DAEMON = os.environ.get("PGCOHERED", os.path.join(REPO, "build", "daemon", "pgcohered"))
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def free_port():
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(argv):
    """argv run as the postgres user (PostgreSQL and PgBouncer refuse root); setpriv execs,
    so the PID we hold is the server's own (for its CPU time)."""
    if os.geteuid() != 0:
        return argv
    pw = pwd.getpwnam("postgres")
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"] + argv


def wait_port(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.closing(socket.socket()) as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


class Cluster:
    def __init__(self, base):
        self.dir = os.path.join(base, "pg")
        self.port = free_port()
        os.makedirs(self.dir)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)

    def start(self):
        data = os.path.join(self.dir, "data")
        subprocess.run(as_postgres([f"{PG_BIN}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(data, "postgresql.auto.conf"), "a") as f:
            f.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.dir}'\n"
                    "max_connections = 700\nshared_buffers = 256MB\nfsync = off\nsynchronous_commit = off\n")
        subprocess.run(as_postgres([f"{PG_BIN}/pg_ctl", "-D", data, "-l", os.path.join(self.dir, "log"), "-w",
                                    "start"]), check=True, stdout=subprocess.DEVNULL)
        return self

    def stop(self):
        subprocess.run(as_postgres([f"{PG_BIN}/pg_ctl", "-D", os.path.join(self.dir, "data"), "-m", "immediate",
                                    "stop"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


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


def write_ini(path, section, port, pg_port, extra=None, auth_file=None):
    settings = dict(SHARED, **(extra or {}))
    lines = ["[databases]", f"bench = host=127.0.0.1 port={pg_port} dbname=postgres user=postgres",
             f"[{section}]", "listen_addr = 127.0.0.1", f"listen_port = {port}"]
    lines += [f"{k} = {v}" for k, v in settings.items()]
    if auth_file:
        lines.append(f"auth_file = {auth_file}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


class Proc:
    def __init__(self, argv, log, port):
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log)
        self.port = port
        wait_port(port)

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
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


def machine_busy_seconds():
    """CPU seconds all cores spent not idle (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


class ProcGroup:
    """N pgcohered processes sharing one port (so_reuseport): measured as one pooler."""

    def __init__(self, procs):
        self.procs = procs
        self.port = procs[0].port

    def cpu_seconds(self):
        return sum(p.cpu_seconds() for p in self.procs)

    def rss_kb(self):
        return sum(p.rss_kb() for p in self.procs)

    def stop(self):
        for p in self.procs:
            p.stop()


def start_ours(base, name, port, pg_port, processes, extra=None):
    """One pgcohered, or `processes` of them on one port with the pool size split among them
    (PgBouncer's so_reuseport deployment: each process has its own pools)."""
    extra = dict(extra or {})
    if processes > 1:
        extra.update(so_reuseport=1, default_pool_size=SHARED["default_pool_size"] // processes)
    ini = os.path.join(base, f"{name}.ini")
    write_ini(ini, "pgcohered", port, pg_port, extra)
    procs = []
    for i in range(processes):
        log = os.path.join(base, f"{name}-{i}.log")
        procs.append(Proc([DAEMON, ini], log, port))
        deadline = time.monotonic() + 20  # the port answers once the first one listens
        while b"pooler listening" not in open(log, "rb").read():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{log}: pooler not listening")
            time.sleep(0.05)
    return procs[0] if processes == 1 else ProcGroup(procs)


def pgbench(port, dbname, clients, duration, extra, logdir):
    """Runs pgbench; returns (tps, p50_ms, p99_ms, transactions)."""
    prefix = os.path.join(logdir, f"pgbench_{port}_{clients}_{time.monotonic_ns()}")
    threads = min(clients, 2)
    argv = ["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-S", "-c", str(clients),
            "-j", str(threads), "-T", str(duration), "-l", "--log-prefix", prefix, "--sampling-rate", "0.2",
            *extra, dbname]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration * 4 + 120, cwd=logdir)
    if out.returncode != 0:
        raise RuntimeError(f"pgbench failed: {' '.join(argv)}\n{out.stderr[-2000:]}")
    tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))
    n = int(re.search(r"number of transactions actually processed: (\d+)", out.stdout).group(1))
    lat = []
    for name in os.listdir(logdir):
        path = os.path.join(logdir, name)
        if name.startswith(os.path.basename(prefix)):
            with open(path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 3:
                        lat.append(int(parts[2]) / 1000.0)
            os.unlink(path)
    lat.sort()
    p50 = lat[len(lat) // 2] if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
    return tps, p50, p99, n


def idle_clients_rss(target, dbname, count):
    socks = []
    body = struct.pack("!i", 196608) + b"user\0postgres\0database\0" + dbname.encode() + b"\0\0"
    packet = struct.pack("!i", len(body) + 4) + body
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", target.port))
            s.sendall(packet)
            socks.append(s)
        for s in socks:  # wait for each ReadyForQuery
            buf = b""
            while not buf.endswith(b"Z\x00\x00\x00\x05I"):
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError("login failed")
                buf += chunk
        return target.rss_kb()
    finally:
        for s in socks:
            s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "pooler"))
    ap.add_argument("--duration", type=int, default=30, help="seconds per pgbench run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clients", default="50,500")
    ap.add_argument("--processes", default="1,2",
                    help="also run N pgcohered processes sharing a port with so_reuseport, the pool size "
                         "split among them (e.g. 1,2); select and -C cases only")
    ap.add_argument("--only", default="", help="comma list of cases: select,prepared,connect,memory")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    only = set(filter(None, args.only.split(",")))
    base = tempfile.mkdtemp(prefix="pool-bench-")
    os.chmod(base, 0o755)
    started = []
    results = []
    try:
        pg = Cluster(base).start()
        started.append(pg)
        subprocess.run(["pgbench", "-i", "-s", "10", "-q", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                        "postgres"], check=True, capture_output=True)
        ours_port, bouncer_port = free_port(), free_port()
        ours = start_ours(base, "pgcohered", ours_port, pg.port, 1)
        started.append(ours)
        ours_prepared = start_ours(base, "pgcohered-prepared", free_port(), pg.port, 1,
                                   {"max_prepared_statements": 200})
        started.append(ours_prepared)
        # The threading question: N single-loop processes on one port (so_reuseport).
        multi = []
        for n in sorted({int(p) for p in args.processes.split(",")} - {1}):
            g = start_ours(base, f"pgcohered-x{n}", free_port(), pg.port, n)
            started.append(g)
            multi.append((f"pgcohered-x{n}", g, "bench"))
        userlist = os.path.join(base, "userlist.txt")
        with open(userlist, "w") as f:
            f.write('"postgres" ""\n')
        bini = os.path.join(base, "pgbouncer.ini")
        write_ini(bini, "pgbouncer", bouncer_port, pg.port, {"unix_socket_dir": ""}, auth_file=userlist)
        with open(bini) as f:  # 1.18 does not know max_prepared_statements
            text = f.read().replace("max_prepared_statements = 0\n", "")
        with open(bini, "w") as f:
            f.write(text)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for p in (base, bini, userlist):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        bouncer = Proc(as_postgres([PGBOUNCER, bini]), os.path.join(base, "pgbouncer.log"), bouncer_port)
        started.append(bouncer)
        targets = [("pgcohered", ours, "bench"), *multi, ("pgbouncer", bouncer, "bench"),
                   ("direct", type("D", (), {"port": pg.port})(), "postgres")]

        def case(name, clients, extra, which):
            # Repeats interleave the targets, so that load drifting on a shared machine
            # hits all of them alike.
            runs = {label: [] for label, _, _ in targets if label in which}
            for _ in range(args.repeats):
                for label, t, db in targets:
                    if label not in which:
                        continue
                    proc = ours_prepared if (label == "pgcohered" and "prepared" in name) else t
                    measured = isinstance(proc, (Proc, ProcGroup))
                    cpu0 = proc.cpu_seconds() if measured else 0
                    busy0 = machine_busy_seconds()
                    tps, p50, p99, n = pgbench(proc.port, db, clients, args.duration, extra, base)
                    cpu = (proc.cpu_seconds() - cpu0) if measured else 0
                    busy = machine_busy_seconds() - busy0
                    runs[label].append((tps, p50, p99, cpu / n * 1e6 if n and measured else 0,
                                        busy / n * 1e6 if n else 0))
                    print(f"  {name} c={clients} {label}: tps={tps:.0f} p50={p50:.2f}ms p99={p99:.2f}ms "
                          f"cpu_us_per_tx={runs[label][-1][3]:.1f} machine_cpu_us_per_tx={runs[label][-1][4]:.1f}",
                          flush=True)
            for label, r in runs.items():
                med = [statistics.median(x[i] for x in r) for i in range(5)]
                results.append((name, clients, label, *med))

        clients = [int(c) for c in args.clients.split(",")]
        all3 = {"pgcohered", "pgbouncer", "direct"} | {label for label, _, _ in multi}
        if not only or "select" in only:
            for c in clients:
                case("select", c, [], all3)
        if not only or "prepared" in only:
            case("select-prepared", 50, ["-M", "prepared"], {"pgcohered", "direct"})
            case("select-extended", 50, ["-M", "extended"], {"pgcohered", "direct"})
        if not only or "connect" in only:
            case("select-connect", 50, ["-C"], all3)
        mem = None
        if not only or "memory" in only:
            mem = {"pgcohered": idle_clients_rss(ours, "bench", 1000),
                   "pgbouncer": idle_clients_rss(bouncer, "bench", 1000)}
        report = render(results, mem, args)
        print(report)
        with open(os.path.join(args.out, "report.md"), "w") as f:
            f.write(report)
    finally:
        for s in reversed(started):
            s.stop()
        shutil.rmtree(base, ignore_errors=True)


def render(results, mem, args):
    lines = [f"# pooler benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
             f"pgbench -S, scale 10, {args.duration} s per run, median of {args.repeats}; "
             f"pool_size 20, transaction mode; pgcohered-xN: N processes on one port (so_reuseport), "
             f"pool size 20/N each. Machine CPU: all processes (pgbench, PostgreSQL, pooler, anything "
             f"else running), busy CPU time per transaction.", "",
             "| case | clients | target | TPS | p50 ms | p99 ms | pooler CPU us/tx | machine CPU us/tx "
             "| TPS ratio vs pgbouncer |",
             "|---|---|---|---|---|---|---|---|---|"]
    bouncer = {(r[0], r[1]): r for r in results if r[2] == "pgbouncer"}
    for name, clients, label, tps, p50, p99, cpu, busy in results:
        ratio = ""
        if (name, clients) in bouncer and label != "pgbouncer":
            ratio = f"{tps / bouncer[(name, clients)][3]:.2f}"
        cpu_text = f"{cpu:.1f}" if cpu else ""
        lines.append(f"| {name} | {clients} | {label} | {tps:.0f} | {p50:.2f} | {p99:.2f} | {cpu_text} | {busy:.1f} "
                     f"| {ratio} |")
    ceilings = []
    for (name, clients), r in bouncer.items():
        cpu, busy = r[6], r[7]
        if busy > cpu > 0:
            # With the CPU saturated, a pooler that cost nothing would free exactly its own
            # share: the best any pooler can do against PgBouncer in this run.
            ceilings.append(f"{name} c={clients}: {busy / (busy - cpu):.2f}")
    if ceilings:
        lines += ["", "Ceiling for a pooler that costs no CPU at all, as a TPS ratio to PgBouncer "
                  "(machine CPU / (machine CPU - PgBouncer CPU) per transaction; meaningful when the "
                  "machine is saturated): " + ", ".join(ceilings)]
    if mem:
        lines += ["", "Resident memory with 1,000 idle clients: " +
                  ", ".join(f"{k} {v / 1024:.1f} MiB" for k, v in mem.items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

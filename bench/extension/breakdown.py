"""Where a committed transaction's CPU and WAL go, per process, in one window inside a
pgbench run: every process is alive from the first sample to the second, so the CPU
time the scheduler accounted (/proc/PID/task/*/schedstat) and the context switches are exact for the window, and the transaction count (next XID, less the publisher's own
NOTIFY transactions) and WAL bytes come from the server at the same two moments."""
import os

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Reported in this order; "machine" is every CPU of the host (/proc/stat), the rest are
# processes.
CLASSES = ["user backends", "publisher", "LISTEN backend", "pgcohered", "Redis", "app listener",
           "other postgres", "pgbench", "machine"]


def process_counters(pid):
    """(CPU seconds, context switches) of pid, all its threads. CPU time is the scheduler's
    (/proc/PID/task/TID/schedstat, nanoseconds), not the 10 ms ticks of /proc/PID/stat.
    Raises FileNotFoundError or ProcessLookupError once it has exited."""
    ns, switches = 0, 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            ns += int(f.read().split()[0])
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    switches += int(line.split()[1])
    return ns / 1e9, switches


def _stat(pid):
    """(ppid, cpu seconds, context switches) of pid (all its threads), or None if it has
    exited."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        cpu, switches = process_counters(pid)
    except (FileNotFoundError, ProcessLookupError):
        return None
    return ppid, cpu, switches


def _title(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _machine_busy():
    with open("/proc/stat") as f:
        cpu = [int(v) for v in f.readline().split()[1:]]
    idle = cpu[3] + cpu[4]  # idle + iowait
    return (sum(cpu[:8]) - idle) / CLK_TCK


class Sampler:
    """sample() twice; breakdown() then gives per-class CPU µs and context switches per
    committed transaction. `pids` maps fixed classes to PIDs (pgcohered, Redis, pgbench,
    the app listener's process); PostgreSQL's children are classified by their title and
    by the LISTEN backends' PIDs (found through their application_name)."""

    def __init__(self, postmaster_pid, conn, pids):
        self.postmaster = postmaster_pid
        self.conn = conn  # a psycopg connection of the bench itself (autocommit)
        self.pids = pids
        self.own_pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        self.samples = []

    def _classify(self, pid, title, listeners):
        if pid in listeners:
            return "LISTEN backend" if listeners[pid] == "pgcohered-listen" else "app listener"
        if "pgcohere publisher" in title:
            return "publisher"
        if title.startswith("postgres: postgres ") and "127.0.0.1" in title:
            return "user backends"
        return "other postgres"

    def sample(self):
        rows = self.conn.execute(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint, "
            "pg_current_wal_lsn() - '0/0'::pg_lsn, "
            "coalesce((SELECT notifications FROM pgcohere.stats()), 0)").fetchone()
        listeners = dict(self.conn.execute(
            "SELECT pid, application_name FROM pg_stat_activity WHERE query ILIKE 'LISTEN %' "
            "OR application_name = 'pgcohered-listen'").fetchall())
        procs = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            st = _stat(pid)
            if st is None or st[0] != self.postmaster or pid == self.own_pid:
                continue
            title = _title(pid)
            procs[pid] = (self._classify(pid, title, listeners), st[1], st[2], title)
        for cls, pid in self.pids.items():
            st = _stat(pid) if pid else None
            if st:
                procs[pid] = (cls, st[1], st[2], cls)
        self.samples.append({"xid": rows[0], "wal": int(rows[1]), "notifications": int(rows[2]),
                             "procs": procs, "machine": _machine_busy()})

    def breakdown(self, publisher_xids=True):
        """Per transaction in the window between the last two samples: CPU µs and context
        switches per class, WAL bytes, NOTIFY payloads; plus the raw counts.
        publisher_xids: the publisher's NOTIFY transactions took XIDs of their own (preload
        mode), one per payload as long as a batch fits one payload."""
        a, b = self.samples[-2], self.samples[-1]
        notifications = b["notifications"] - a["notifications"]
        # User transactions of tpcb-like each take one XID.
        tx = (b["xid"] - a["xid"]) - (notifications if publisher_xids else 0)
        cpu = {c: 0.0 for c in CLASSES}
        switches = {c: 0 for c in CLASSES}
        other = {}  # "other postgres" by process title: which of them the rule wakes
        for pid, (cls, t1, s1, title) in b["procs"].items():
            if pid not in a["procs"]:
                continue  # started inside the window (e.g. an autovacuum worker): not counted
            _, t0, s0, _ = a["procs"][pid]
            cpu[cls] += t1 - t0
            switches[cls] += s1 - s0
            if cls == "other postgres":
                name = title.split("   ")[0]
                prev = other.get(name, (0.0, 0))
                other[name] = (prev[0] + t1 - t0, prev[1] + s1 - s0)
        cpu["machine"] = b["machine"] - a["machine"]
        tx = max(tx, 1)
        return {"transactions": tx, "notifications": notifications,
                "cpu_us_per_tx": {c: round(v * 1e6 / tx, 1) for c, v in cpu.items()},
                "switches_per_tx": {c: round(v / tx, 2) for c, v in switches.items() if c != "machine"},
                "other_postgres_per_tx": {n: (round(c * 1e6 / tx, 1), round(w / tx, 2)) for n, (c, w) in other.items()},
                "wal_bytes_per_tx": round((b["wal"] - a["wal"]) / tx, 1),
                "notifications_per_tx": round(notifications / tx, 3)}

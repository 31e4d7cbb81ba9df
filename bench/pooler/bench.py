"""pgbench side by side: pgcohered vs PgBouncer (Debian's, same settings) vs direct.

Runs, on a private PostgreSQL 15 cluster initialised at scale 10:
  * pgbench -S (select only) at -c 50 and -c 500: TPS, p50 and p99 latency;
  * pgbench -S -M prepared at -c 50 (pgcohered and direct; PgBouncer 1.18 cannot);
  * pgbench -S -C (new connection per transaction) at -c 50;
  * pgcohered's CPU time per transaction, and its resident memory with 1,000 idle clients
    (and per idle client: the growth from none over 1,000, which includes what the first
    logins cost once, such as the pool's server connections; and the growth from 1,000 to
    2,000, the cost of one more idle client).
Each case is repeated; the tables report medians. Every server it starts is stopped by PID.
"""
import argparse
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.measure import interleaved, measured, medians, pgbench  # noqa: E402
from common.servers import REPO, Direct, free_port, raise_fd_limit, start_cluster, start_ours, start_pgbouncer  # noqa: E402


IDLE_CLIENTS = 1000


def log_in_idle(port, dbname, count, socks):
    """`count` more logged-in idle clients (appended to `socks`), each past its ReadyForQuery."""
    body = struct.pack("!i", 196608) + b"user\0postgres\0database\0" + dbname.encode() + b"\0\0"
    packet = struct.pack("!i", len(body) + 4) + body
    new = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        socks.append(s)
        new.append(s)
        s.sendall(packet)
    for s in new:
        buf = b""
        while not buf.endswith(b"Z\x00\x00\x00\x05I"):
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("login failed")
            buf += chunk


def idle_clients_rss(target, dbname, count):
    """Memory kB (before, with `count` logged-in idle clients, with 2 x `count`), each a pair
    (RSS, its anonymous part): (second - before) / count is what an idle client costs counting
    the first logins' one-time costs, (third - second) / count what one more costs. The first
    logins also page in the code they run (RSS but not anonymous: file pages the kernel can
    drop and read again), which is why the anonymous part is reported too."""
    def sample():
        return target.rss_kb(), target.rss_kb("RssAnon")

    before = sample()
    socks = []
    try:
        log_in_idle(target.port, dbname, count, socks)
        first = sample()
        log_in_idle(target.port, dbname, count, socks)
        return before, first, sample()
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
    raise_fd_limit(2 * IDLE_CLIENTS + 1024)  # the memory case's sockets, here and in each pooler
    base = tempfile.mkdtemp(prefix="pool-bench-")
    os.chmod(base, 0o755)
    started = []
    results = []
    failures = []  # (case, target, reason): a failed run is reported, the others go on
    try:
        pg = start_cluster(base)
        started.append(pg)
        subprocess.run(["pgbench", "-i", "-s", "10", "-q", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                        "postgres"], check=True, capture_output=True)
        ours = start_ours(base, "pgcohered", free_port(), pg.port, 1)
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
        bouncer = start_pgbouncer(base, free_port(), pg.port)
        started.append(bouncer)
        targets = [("pgcohered", ours, "bench"), *multi, ("pgbouncer", bouncer, "bench"),
                   ("direct", Direct(pg.port), "postgres")]

        def case(name, clients, extra, which):
            by_label = {label: (t, db) for label, t, db in targets}

            def run_one(label, _repeat):
                t, db = by_label[label]
                proc = ours_prepared if (label == "pgcohered" and "prepared" in name) else t

                def run():
                    tps, p50, p99, n = pgbench(proc.port, db, clients, args.duration, extra, base)
                    return (tps, p50, p99), n

                (tps, p50, p99), cpu, busy = measured(proc, run)
                print(f"  {name} c={clients} {label}: tps={tps:.0f} p50={p50:.2f}ms p99={p99:.2f}ms "
                      f"cpu_us_per_tx={cpu:.1f} machine_cpu_us_per_tx={busy:.1f}", flush=True)
                return tps, p50, p99, cpu, busy

            runs = interleaved([label for label, _, _ in targets if label in which], args.repeats, run_one,
                               failures, case=f"{name} c={clients}")
            for label, r in runs.items():
                if not r:
                    continue
                results.append((name, clients, label, *medians(r)))

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
            # Fresh processes: one that served 500 clients before keeps their freed memory,
            # and idle clients would then fill it without growing RSS.
            idle_base = os.path.join(base, "idle")
            os.makedirs(idle_base, exist_ok=True)
            os.chmod(idle_base, 0o777)
            fresh_ours = start_ours(idle_base, "pgcohered", free_port(), pg.port, 1)
            started.append(fresh_ours)
            fresh_bouncer = start_pgbouncer(idle_base, free_port(), pg.port)
            started.append(fresh_bouncer)
            mem = {"pgcohered": idle_clients_rss(fresh_ours, "bench", IDLE_CLIENTS),
                   "pgbouncer": idle_clients_rss(fresh_bouncer, "bench", IDLE_CLIENTS)}
        report = render(results, mem, args, failures)
        print(report)
        with open(os.path.join(args.out, "report.md"), "w") as f:
            f.write(report)
    finally:
        for s in reversed(started):
            s.stop()
        shutil.rmtree(base, ignore_errors=True)


def failure_summary(reason):
    """What failed and pgbench's last word: the reason's first line (the error and the
    command) and its last (the tool's stderr ends there; alone it can be as bland as
    "starting vacuum...end.")."""
    lines = [line for line in (reason or "").splitlines() if line.strip()]
    if not lines:
        return "?"
    return lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"


def render(results, mem, args, failures=()):
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
        def kb(delta):
            return f"{delta * 1024 / IDLE_CLIENTS / 1000:.1f} kB"
        lines += ["", f"Resident memory with {IDLE_CLIENTS:,} idle clients (per idle client: the growth from none "
                  f"over {IDLE_CLIENTS:,}; then the growth from {IDLE_CLIENTS:,} to {2 * IDLE_CLIENTS:,} idle "
                  f"clients over the {IDLE_CLIENTS:,} added; in brackets the same for anonymous memory alone, "
                  "without the code pages the first logins read in): " +
                  ", ".join(f"{k} {first[0] / 1024:.1f} MiB ({kb(first[0] - before[0])}; {kb(second[0] - first[0])}) "
                            f"[{kb(first[1] - before[1])}; {kb(second[1] - first[1])}]"
                            for k, (before, first, second) in mem.items())]
    if failures:
        lines += ["", "Runs that failed (medians above are of the others):"]
        lines += [f"- {case}, {label}: {failure_summary(reason)}" for case, label, reason in failures]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

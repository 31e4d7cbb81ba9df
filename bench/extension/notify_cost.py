"""pgcohered's cost per invalidation NOTIFY, counted rather than timed: a steady stream of
single-row UPDATEs on a watched table (pgbench -R, one client, so each commit is one NOTIFY
that arrives alone, as at 1 client in run.sh) drives one daemon binary after another on the
same PostgreSQL and Redis, and for each binary it reports
  - user-space instructions per NOTIFY under callgrind (bench/cache/instructions.py's
    wrapper and parsers): a window without load first (timers: their instructions per
    second are subtracted), then a window with load; divided by the notifications
    pgcohered itself counted (pgcohere_invalidations_received_total);
  - natively (no valgrind): context switches and CPU µs per NOTIFY from /proc in one window,
    then the system calls per NOTIFY under `strace -c -f` in another.
  notify_cost.py --daemon OLD --daemon NEW [--label old --label new] [--out DIR]
                 [--rate 40] [--seconds 30] [--skip-callgrind] [--skip-native]
Every server it starts is stopped by its PID."""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "bench", "cache"))
from breakdown import process_counters  # noqa: E402  (bench/extension, this directory)
import instructions  # noqa: E402  (bench/cache: callgrind wrapper, dump totals, per-function costs)
import harness.servers as hs  # noqa: E402  (on sys.path through instructions)
from harness.servers import (Daemon, PgCluster, RedisServer, daemon_config, free_port,  # noqa: E402
                             make_secret_file, temp_dir, wait_until)

PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
DB = "bench"
ROWS = 10000
SCRIPT = f"\\set id random(1, {ROWS})\nUPDATE t SET v = v + 1 WHERE id = :id;\n"


def received(metrics_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30) as r:
        text = r.read().decode()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("pgcohere_invalidations_received_total")))


def stop_load(load):
    """Ends the pgbench load; it must still have been running (else its stderr is raised)."""
    if load.poll() is not None:
        raise RuntimeError(f"pgbench ended early: {load.stderr.read()[-1500:]}")
    load.terminate()
    load.communicate(timeout=60)


def parse_strace_summary(text):
    """{syscall: calls} from the table `strace -c` writes (columns: % time, seconds,
    usecs/call, calls, [errors,] syscall)."""
    calls = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) < 5 or not re.match(r"^[\d.]+$", cols[0]) or not cols[3].isdigit() or cols[-1] == "total":
            continue
        calls[cols[-1]] = int(cols[3])
    return calls


class Bench:
    def __init__(self, base, rate):
        self.base = base
        self.rate = rate
        self.secret = make_secret_file(base)
        self.cluster = PgCluster(os.path.join(base, "pg"), preload=True, secret_file=self.secret,
                                 settings={"log_min_messages": "warning"}).init().start()
        self.redis = RedisServer(os.path.join(base, "redis")).start()
        with self.cluster.connect() as c:
            c.execute(f"CREATE DATABASE {DB}")
        with self.cluster.connect(DB) as c:
            c.execute("CREATE EXTENSION pgcohere")
            c.execute("CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)")
            c.execute(f"INSERT INTO t SELECT g, 0 FROM generate_series(1, {ROWS}) g")
            c.execute("SELECT pgcohere.watch('t', ARRAY['t:{id}'])")
        self.script = os.path.join(base, "update.sql")
        with open(self.script, "w") as f:
            f.write(SCRIPT)

    def daemon(self, binary, workdir):
        port, self.metrics_port = free_port(), free_port()
        hs.DAEMON_BIN = binary
        d = Daemon(workdir, daemon_config(port, self.cluster, [DB], self.redis.url, self.secret,
                                          metrics_port=self.metrics_port), port)
        d.start(wait_for_port=False)
        wait_until(lambda: d.proc.poll() is None and "resync (connect) done" in d.log(), timeout=180,
                   what=f"pgcohered listening (log {d.log_path})")
        return d

    def load(self, seconds):
        return subprocess.Popen([PGBENCH, "-n", "-h", self.cluster.host, "-p", str(self.cluster.port), "-U",
                                 "postgres", "-c", "1", "-R", str(self.rate), "-T", str(seconds), "-f", self.script,
                                 DB], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self):
        self.redis.stop()
        self.cluster.remove()


def callgrind_window(pid, base, seconds):
    before = {os.path.join(base, n) for n in os.listdir(base)}
    subprocess.run(["callgrind_control", "--zero", str(pid)], check=True, capture_output=True)
    time.sleep(seconds)
    subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)
    return instructions.newest_dump(base, pid, before)


def measure_callgrind(bench, binary, label, args):
    work = os.path.join(bench.base, f"cg-{label}")
    os.makedirs(work)
    os.chmod(work, 0o755)
    instructions.servers.DAEMON = binary
    d = bench.daemon(instructions.callgrind_wrapper(work), work)
    try:
        time.sleep(2)
        idle_dump = callgrind_window(d.pid, work, args.idle_seconds)
        idle_per_s = instructions.total(idle_dump) / args.idle_seconds
        load = bench.load(args.warmup + args.seconds + 30)
        time.sleep(args.warmup)
        n0 = received(bench.metrics_port)
        dump = callgrind_window(d.pid, work, args.seconds)
        n = received(bench.metrics_port) - n0
        stop_load(load)
    finally:
        d.stop()
    if n <= 0:
        raise RuntimeError(f"{label}: no notification counted in the window")
    kept = os.path.join(args.out, f"callgrind.{label}.load")
    shutil.copy(dump, kept)
    shutil.copy(idle_dump, os.path.join(args.out, f"callgrind.{label}.idle"))
    gross = instructions.total(dump)
    funcs = {k: v / n for k, v in instructions.per_function(dump).items()}
    return {"notifications": n, "gross_per_notify": gross / n, "idle_per_s": idle_per_s,
            "net_per_notify": (gross - idle_per_s * args.seconds) / n, "functions": funcs, "dump": kept}


def strace_window(pid, seconds, path, count=None):
    """{syscall: calls} of every thread of pid in `seconds` (strace -c -f); with `count`, also
    count() taken once strace is attached and at the end."""
    st = subprocess.Popen(["strace", "-c", "-f", "-o", path, "-p", str(pid)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)  # attached to every thread (the calls of this second are counted too)
    n0 = count() if count else 0
    time.sleep(seconds)
    n1 = count() if count else 0
    st.send_signal(signal.SIGINT)
    st.wait(timeout=30)
    with open(path) as f:
        return parse_strace_summary(f.read()), n1 - n0


def measure_native(bench, binary, label, args):
    work = os.path.join(bench.base, f"native-{label}")
    d = bench.daemon(binary, work)
    try:
        time.sleep(2)
        idle0 = process_counters(d.pid)
        time.sleep(args.idle_seconds)
        idle1 = process_counters(d.pid)
        idle_calls, _ = strace_window(d.pid, args.idle_seconds, os.path.join(args.out, f"strace.{label}.idle.txt"))
        load = bench.load(args.warmup + 2 * args.seconds + 30)
        time.sleep(args.warmup)
        n0, c0 = received(bench.metrics_port), process_counters(d.pid)
        time.sleep(args.seconds)
        n1, c1 = received(bench.metrics_port), process_counters(d.pid)
        calls, ns = strace_window(d.pid, args.seconds, os.path.join(args.out, f"strace.{label}.txt"),
                                  lambda: received(bench.metrics_port))
        stop_load(load)
    finally:
        d.stop()
    n = n1 - n0
    ns = max(ns, 1)
    idle_switch_rate = (idle1[1] - idle0[1]) / args.idle_seconds
    idle_cpu_rate = (idle1[0] - idle0[0]) / args.idle_seconds
    # Net of what the daemon does without load in as long (its timers). strace counts for
    # 1 s more than the notifications are counted (attaching), at the load's rate and the
    # idle one alike, so both are scaled to the window.
    scale = args.seconds / (args.seconds + 1)
    net_calls = {k: (v * scale - idle_calls.get(k, 0) * args.seconds / (args.idle_seconds + 1)) / ns
                 for k, v in calls.items()}
    return {"notifications": n,
            "cpu_us_per_notify": (c1[0] - c0[0] - idle_cpu_rate * args.seconds) * 1e6 / n,
            "switches_per_notify": (c1[1] - c0[1] - idle_switch_rate * args.seconds) / n,
            "idle_switches_per_s": idle_switch_rate, "idle_cpu_us_per_s": idle_cpu_rate * 1e6,
            "strace_notifications": ns, "syscalls_per_notify": sum(net_calls.values()),
            "gross_syscalls_per_notify": sum(calls.values()) * scale / ns,
            "idle_syscalls_per_s": sum(idle_calls.values()) / (args.idle_seconds + 1),
            "syscalls": dict(sorted(net_calls.items(), key=lambda kv: -kv[1]))}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--daemon", action="append", required=True, help="a pgcohered binary (repeat to compare)")
    ap.add_argument("--label", action="append", help="a name per --daemon (default: d1, d2, ...)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "notify-cost"))
    ap.add_argument("--rate", type=int, default=40, help="NOTIFYs per second (pgbench -R, one client)")
    ap.add_argument("--seconds", type=int, default=30, help="counted window")
    ap.add_argument("--idle-seconds", type=int, default=10, help="window without load (timers)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--top", type=int, default=25, help="functions listed by their own instructions")
    ap.add_argument("--skip-callgrind", action="store_true")
    ap.add_argument("--skip-native", action="store_true")
    args = ap.parse_args()
    labels = args.label or [f"d{i + 1}" for i in range(len(args.daemon))]
    if len(labels) != len(args.daemon):
        sys.exit("one --label per --daemon")
    os.makedirs(args.out, exist_ok=True)
    base = temp_dir("notify-cost-")
    bench = Bench(base, args.rate)
    lines = [f"# pgcohered per invalidation NOTIFY ({args.rate} NOTIFYs/s, one single-row UPDATE each; "
             f"{args.seconds} s windows)", "", f"load average at start: {instructions.load_average()}", ""]
    results = {}
    try:
        for binary, label in zip(args.daemon, labels):
            r = {"binary": binary}
            if not args.skip_callgrind:
                r["callgrind"] = measure_callgrind(bench, binary, label, args)
                print(f"{label} callgrind: {r['callgrind']['net_per_notify']:,.0f} net instr/NOTIFY", flush=True)
            if not args.skip_native:
                r["native"] = measure_native(bench, binary, label, args)
                print(f"{label} native: {r['native']['syscalls_per_notify']:.2f} syscalls/NOTIFY, "
                      f"{r['native']['switches_per_notify']:.2f} cs/NOTIFY", flush=True)
            results[label] = r
    finally:
        bench.stop()
    lines += ["| binary | instr/NOTIFY (net of idle) | gross | idle instr/s | NOTIFYs | syscalls/NOTIFY (net; gross) | "
              "context switches/NOTIFY (net of idle) | CPU µs/NOTIFY (native, net of idle; noisy) |",
              "|---|---|---|---|---|---|---|---|"]
    for label, r in results.items():
        cg, nat = r.get("callgrind"), r.get("native")
        cells = [f"{cg['net_per_notify']:,.0f}", f"{cg['gross_per_notify']:,.0f}", f"{cg['idle_per_s']:,.0f}",
                 str(cg["notifications"])] if cg else ["", "", "", ""]
        cells += [f"{nat['syscalls_per_notify']:.2f}; {nat['gross_syscalls_per_notify']:.2f}", f"{nat['switches_per_notify']:.2f}",
                  f"{nat['cpu_us_per_notify']:.0f}"] if nat else ["", "", ""]
        lines.append(f"| {label} {r['binary']} | " + " | ".join(cells) + " |")
    for label, r in results.items():
        if "native" in r:
            lines += ["", f"System calls per NOTIFY (net of idle), {label}: " +
                      ", ".join(f"{k} {v:.2f}" for k, v in r["native"]["syscalls"].items() if v >= 0.01)]
        if "callgrind" in r:
            top = sorted(r["callgrind"]["functions"].items(), key=lambda kv: -kv[1])[:args.top]
            lines += ["", f"Own instructions per NOTIFY, {label} (dump {r['callgrind']['dump']}):", ""]
            lines += [f"- {v:,.0f}  {k[:160]}" for k, v in top]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(text)
    print(text)
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

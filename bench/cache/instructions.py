"""The query cache's cost on statements it does not cache, counted rather than timed: the
pooler's user-space instructions per `pgbench -S` transaction under callgrind, with the cache
on (no policy on pgbench's tables) against the cache off, in one run. A count does not move
with the machine's load the way TPS and CPU time do, so a difference of a few hundred
instructions per statement shows. It also lists the functions where the two differ most.

Both daemons run under `valgrind --tool=callgrind` (about 50x slower, so the TPS here means
nothing); pgbench runs through each for --seconds after a warm-up in which its clients log
in, and the count covers only the window between `callgrind_control --zero` and `--dump`,
divided by the transactions SHOW STATS counted in it. Setup as bench.py (--top-messages 0).
  instructions.py [--out DIR] [--clients 1,50] [--seconds 20]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]
import common.servers as servers  # noqa: E402
from common.servers import console_stats, load_average  # noqa: E402
from harness.servers import temp_dir  # noqa: E402

from bench import Setup  # noqa: E402
from workload import Options  # noqa: E402

LABELS = ("cache-off", "cache-on")
# Frames on the stack when callgrind_control dumps mid-run: the dump charges them the calls
# still open, which is no cost of theirs.
OPEN_FRAMES = re.compile(r"^(\(below main\)|main|__libc_start_\w*(@@\S+)?|0x[0-9a-f]+|pgcohere::app::App::run\(\))$")


def callgrind_wrapper(base):
    """An executable that runs the daemon under callgrind, dumps into base/callgrind.<pid>.*"""
    path = os.path.join(base, "pgcohered-callgrind")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec valgrind --tool=callgrind --quiet "
                f"--callgrind-out-file={base}/callgrind.%p {servers.DAEMON} \"$@\"\n")
    os.chmod(path, 0o755)
    return path


def transactions(port):
    fields = console_stats(port, "admin", "pgcohere")
    if not fields:
        raise RuntimeError(f"SHOW STATS on port {port} did not answer")
    return int(fields["total_xact_count"])


def newest_dump(base, pid, before):
    dumps = [os.path.join(base, n) for n in os.listdir(base) if n.startswith(f"callgrind.{pid}")]
    fresh = [d for d in dumps if d not in before]
    if not fresh:
        raise RuntimeError(f"callgrind wrote no dump for pid {pid}")
    return max(fresh, key=os.path.getmtime)


def per_function(dump):
    """{function: its own instructions} from callgrind_annotate."""
    out = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", dump], capture_output=True, text=True,
                         check=True).stdout
    costs = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([\d.]+%\)\s+)?(\S.*?)(?:\s+\[[^\]]*\])?$", line)
        if m and ":" in m.group(2) and not m.group(2).startswith("PROGRAM TOTALS"):
            name = m.group(2).split(":", 1)[1]
            if OPEN_FRAMES.match(name):
                continue
            costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def total(dump):
    with open(dump) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError(f"{dump}: no totals line")


def measure(setup, label, clients, warmup, seconds):
    daemon = setup.on if label == "cache-on" else setup.off
    pid = daemon.proc.pid
    argv = ["pgbench", "-n", "-S", "-h", "127.0.0.1", "-p", str(daemon.port), "-U", "postgres",
            "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(warmup + seconds + 10), "bench"]
    bench = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(warmup)
        before = set(os.listdir(setup.base))
        start = transactions(daemon.port)
        subprocess.run(["callgrind_control", "--zero", str(pid)], check=True, capture_output=True)
        time.sleep(seconds)
        subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)
        done = transactions(daemon.port) - start
        if bench.poll() is not None:
            raise RuntimeError(f"pgbench ended early: {bench.stderr.read()[-1500:]}")
    finally:
        bench.terminate()
        bench.communicate(timeout=60)
    dump = newest_dump(setup.base, pid, {os.path.join(setup.base, n) for n in before})
    if done <= 0:
        raise RuntimeError(f"{label}: no transaction counted in the window")
    return done, total(dump) / done, {k: v / done for k, v in per_function(dump).items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(servers.REPO, "bench", "results", "cache-instructions"))
    ap.add_argument("--clients", default="1,50")
    ap.add_argument("--seconds", type=int, default=20, help="counted window per target and client count")
    ap.add_argument("--warmup", type=int, default=10, help="seconds before the window (logins, first statements)")
    ap.add_argument("--top", type=int, default=12, help="functions listed by the largest difference")
    args = ap.parse_args()
    if not shutil.which("callgrind_control"):
        sys.exit("instructions.py needs valgrind (apt-get install valgrind)")
    os.makedirs(args.out, exist_ok=True)
    base = temp_dir("cache-instr-")
    servers.DAEMON = callgrind_wrapper(base)
    setup = Setup(base)
    lines = ["# Pooler instructions per `pgbench -S` transaction, cache on (no policy matching) vs off",
             "", f"load average at start: {load_average()}", "",
             "| clients | cache off: instr/tx | cache on: instr/tx | on - off | transactions counted (off / on) |",
             "|---|---|---|---|---|"]
    detail = []
    failures = []
    try:
        setup.start(Options(top_messages=0, conversations=100, users=100))
        for clients in [int(c) for c in args.clients.split(",")]:
            try:
                results = {label: measure(setup, label, clients, args.warmup, args.seconds) for label in LABELS}
            except Exception as e:  # noqa: BLE001 - reported; the other client counts still run
                failures.append(f"{clients} clients: {e}")
                print(f"FAILED {clients} clients: {e}", file=sys.stderr, flush=True)
                continue
            (n_off, off, f_off), (n_on, on, f_on) = results["cache-off"], results["cache-on"]
            lines.append(f"| {clients} | {off:,.0f} | {on:,.0f} | {on - off:+,.0f} | {n_off:,} / {n_on:,} |")
            print(lines[-1], flush=True)
            diff = sorted(((f_on.get(k, 0) - f_off.get(k, 0), k) for k in set(f_on) | set(f_off)),
                          key=lambda d: -abs(d[0]))
            detail += ["", f"Largest differences at {clients} clients (instructions per transaction, on - off):", ""]
            detail += [f"- {d:+,.0f}  {name[:160]}" for d, name in diff[:args.top]]
    finally:
        setup.stop()
    text = "\n".join(lines + detail + ([""] + [f"FAILED: {f}" for f in failures] if failures else [])) + "\n"
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(text)
    print(text)
    shutil.rmtree(base, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

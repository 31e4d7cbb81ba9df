"""Running the same case on several targets, repeats interleaved, and summarising: pgbench,
percentiles, medians, per-process CPU per transaction."""
import os
import re
import statistics
import subprocess
import time
import traceback

from .servers import Proc, ProcGroup, machine_busy_seconds


def percentile(sorted_values, q):
    """The q-quantile (0..1) of an ascending list by nearest rank; NaN when empty."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def pgbench(port, dbname, clients, duration, extra, logdir, select_only=True):
    """Runs pgbench; returns (tps, p50_ms, p99_ms, transactions)."""
    prefix = os.path.join(logdir, f"pgbench_{port}_{clients}_{time.monotonic_ns()}")
    threads = min(clients, 2)
    argv = ["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", *(["-S"] if select_only else []),
            "-c", str(clients), "-j", str(threads), "-T", str(duration), "-l", "--log-prefix", prefix,
            "--sampling-rate", "0.2", *extra, dbname]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration * 4 + 120, cwd=logdir)
    if out.returncode != 0:
        raise RuntimeError(f"pgbench failed: {' '.join(argv)}\n{out.stderr[-2000:]}")
    tps_line = re.search(r"tps = ([\d.]+)", out.stdout)
    n_line = re.search(r"number of transactions actually processed: (\d+)", out.stdout)
    if not tps_line or not n_line:  # e.g. clients that could not connect: pgbench says why on stderr
        raise RuntimeError(f"pgbench reported no throughput: {' '.join(argv)}\n{out.stderr[-2000:]}")
    tps, n = float(tps_line.group(1)), int(n_line.group(1))
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
    return tps, percentile(lat, 0.5), percentile(lat, 0.99), n


def measured(target, run):
    """run() -> (result, transactions); adds the target's CPU µs per transaction (0 when the
    target is not ours to measure) and the whole machine's busy CPU µs per transaction."""
    ours = isinstance(target, (Proc, ProcGroup))
    cpu0 = target.cpu_seconds() if ours else 0
    busy0 = machine_busy_seconds()
    result, n = run()
    cpu = (target.cpu_seconds() - cpu0) if ours else 0
    busy = machine_busy_seconds() - busy0
    return result, (cpu / n * 1e6 if n and ours else 0), (busy / n * 1e6 if n else 0)


def interleaved(labels, repeats, run_one, failures=None, case=""):
    """Calls run_one(label, repeat) for every label, `repeats` rounds, the labels in turn
    within a round, so that load drifting on a shared machine hits all of them alike.
    Returns {label: [results]}. With `failures` (a list), a run that raises is recorded
    there as (case, label, reason) and the others go on; without, it propagates."""
    runs = {label: [] for label in labels}
    for repeat in range(repeats):
        for label in labels:
            try:
                runs[label].append(run_one(label, repeat))
            except Exception as e:  # noqa: BLE001 - one failing case must not stop the others
                if failures is None:
                    raise
                reason = str(e) or traceback.format_exc(limit=3)
                failures.append((case, label, reason.strip()[-2000:]))
                print(f"  {case} {label}: FAILED: {reason.strip()[-2000:]}", flush=True)
    return runs


def medians(rows):
    """Column-wise medians of equal-length numeric tuples."""
    return [statistics.median(r[i] for r in rows) for i in range(len(rows[0]))]

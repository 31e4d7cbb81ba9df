"""Writes docs/benchmarks.md and its PNG plots from one `make bench-report` run: the
tables (each measurement beside its anchor from the same run), the commands, and the
machine and date. Inputs in OUT (bench/report/run.sh writes them): pooler_sweep.json,
invalidation.json, cache/report.md (+ cache/timeline.json when bench/cache writes one),
extension/report.md, env.json. A missing input is reported as missing, not invented."""
import argparse
import json
import math
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TARGETS = ("direct", "pgbouncer", "pgcohered")
COLORS = {"direct": "tab:gray", "pgbouncer": "tab:blue", "pgcohered": "tab:red"}


def load(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f) if path.endswith(".json") else f.read()


def fmt(v, digits=2):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (int, float)) and abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def demote(markdown):
    """Another report's markdown inside ours: its headings two levels down."""
    return re.sub(r"^(#+) ", lambda m: "#" * min(6, len(m.group(1)) + 2) + " ", markdown, flags=re.M).strip()


def save(fig, plots_dir, name):
    path = os.path.join(plots_dir, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return name


def pooler_section(sweep, plots_dir, rel):
    out = ["## Pooler: TPS, p99 and queue wait against clients", ""]
    if not sweep:
        return out + ["Not measured in this run (bench/report/pooler_sweep.py wrote no pooler_sweep.json).", ""]
    rows = sweep["rows"]
    clients = sorted({r["clients"] for r in rows})
    by = {(r["clients"], r["target"]): r for r in rows}
    out += [f"Command: `/usr/bin/python3 bench/report/pooler_sweep.py --out OUT --clients "
            f"{','.join(map(str, clients))} --duration {sweep['duration_s']} --repeats {sweep['repeats']}`. "
            f"pgbench -S (select only), scale {sweep['scale']}, {sweep['duration_s']} s per run, median of "
            f"{sweep['repeats']}, targets interleaved; both poolers in transaction mode with pool_size "
            f"{sweep['pool_size']}. Anchors: direct PostgreSQL (one backend per client) and Debian's PgBouncer. "
            f"Load average before {sweep['load_before']}, after {sweep['load_after']}.", "",
            "| clients | direct TPS | PgBouncer TPS | pgcohered TPS | pgcohered / PgBouncer | direct p99 ms "
            "| PgBouncer p99 ms | pgcohered p99 ms | pgcohered queue wait p50 / p95 / p99 ms |",
            "|---|---|---|---|---|---|---|---|---|"]
    for c in clients:
        d, b, o = (by.get((c, t), {}) for t in TARGETS)
        ratio = o.get("tps") / b["tps"] if o.get("tps") and b.get("tps") else None
        out.append(f"| {c} | {fmt(d.get('tps'))} | {fmt(b.get('tps'))} | {fmt(o.get('tps'))} | {fmt(ratio)} "
                   f"| {fmt(d.get('p99_ms'))} | {fmt(b.get('p99_ms'))} | {fmt(o.get('p99_ms'))} "
                   f"| {fmt(o.get('queue_wait_p50_ms'))} / {fmt(o.get('queue_wait_p95_ms'))} / "
                   f"{fmt(o.get('queue_wait_p99_ms'))} |")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for t in TARGETS:
        xs = [c for c in clients if (c, t) in by]
        a1.plot(xs, [by[(c, t)]["tps"] for c in xs], "o-", color=COLORS[t], label=t)
        a2.plot(xs, [by[(c, t)]["p99_ms"] for c in xs], "o-", color=COLORS[t], label=t)
    for a, title, unit in ((a1, "throughput", "TPS"), (a2, "p99 latency", "ms")):
        a.set_xscale("log")
        a.set_xlabel("clients")
        a.set_ylabel(unit)
        a.set_title(f"pgbench -S: {title}")
        a.grid(True, alpha=0.3)
        a.legend()
    tps_png = save(fig, plots_dir, "pooler_tps_p99.png")
    fig, a = plt.subplots(figsize=(6, 4))
    for key, label in (("queue_wait_p50_ms", "p50"), ("queue_wait_p95_ms", "p95"), ("queue_wait_p99_ms", "p99")):
        xs = [c for c in clients if by.get((c, "pgcohered"), {}).get(key) is not None]
        a.plot(xs, [by[(c, "pgcohered")][key] for c in xs], "o-", label=label)
    a.set_xscale("log")
    a.set_xlabel("clients")
    a.set_ylabel("ms")
    a.set_title(f"pgcohered queue wait (pool_size {sweep['pool_size']})")
    a.grid(True, alpha=0.3)
    a.legend()
    wait_png = save(fig, plots_dir, "pooler_queue_wait.png")
    out += ["", f"![TPS and p99 against clients]({rel}/{tps_png})", "",
            f"![queue wait against clients]({rel}/{wait_png})", "",
            "Queue wait: pgcohere_pool_queue_wait_ms between the scrapes before and after each run "
            "(bucket bounds 1-2-5; quantiles interpolated inside a bucket). Past pool_size clients, "
            "every extra client waits for a server connection: that wait is the pooler's share of the "
            "p99 beside direct PostgreSQL.", ""]
    return out


def invalidation_section(inv, plots_dir, rel):
    out = ["## Invalidation: commit-to-purge latency and pattern purges", ""]
    if not inv:
        return out + ["Not measured in this run (bench/report/invalidation.py wrote no invalidation.json).", ""]
    ours, plain = inv.get("pgcohered", {}), inv.get("plain_trigger", {})
    out += [f"Command: `/usr/bin/python3 bench/report/invalidation.py --out OUT --seconds {inv['seconds']} "
            f"--rate {inv['rate']}" + (f" --keyspaces {inv['keyspaces']}" if inv.get("keyspaces") else "") +
            f"`. {inv['rate']:,} committing UPDATEs per second, paced, for "
            f"{inv['seconds']} s. pgcohered: the extension (preload mode) publishes, the daemon purges Redis; "
            "latency from the commit time the extension stamps to the purge done, the daemon's histogram. "
            "Anchor: a PL/pgSQL trigger calling pg_notify per row and a Python (asyncpg) LISTEN client that "
            "UNLINKs each key, timed from the trigger's clock_timestamp() (before the commit, so it favours "
            "the anchor) to the UNLINK reply.", "",
            "| path | achieved tx/s | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|",
            f"| pgcohered (extension + daemon) | {fmt(ours.get('achieved_tx_per_s'))} | {fmt(ours.get('p50_ms'))} "
            f"| {fmt(ours.get('p95_ms'))} | {fmt(ours.get('p99_ms'))} |",
            f"| anchor: trigger + pg_notify + LISTEN client | {fmt(plain.get('achieved_tx_per_s'))} "
            f"| {fmt(plain.get('p50_ms'))} | {fmt(plain.get('p95_ms'))} | {fmt(plain.get('p99_ms'))} |"]
    fig, a = plt.subplots(figsize=(6, 4))
    if ours.get("cdf"):
        xs, ys = zip(*ours["cdf"])
        # Known only at the bucket bounds: points joined, not steps.
        a.plot(xs, ys, ".-", color=COLORS["pgcohered"], label="pgcohered (at the histogram's bucket bounds)")
    if plain.get("samples_ms"):
        s = sorted(plain["samples_ms"])
        a.step(s, [(i + 1) / len(s) for i in range(len(s))], where="post", color=COLORS["direct"],
               label="trigger + pg_notify + LISTEN client")
    a.set_xscale("log")
    a.set_xlabel("commit to purge, ms")
    a.set_ylabel("fraction of invalidations")
    a.set_title(f"commit-to-purge latency CDF at {inv['rate']:,} tx/s")
    a.grid(True, alpha=0.3, which="both")
    a.legend(loc="lower right")
    cdf_png = save(fig, plots_dir, "invalidation_latency_cdf.png")
    out += ["", f"![commit-to-purge latency CDF]({rel}/{cdf_png})", ""]

    rows = inv.get("patterns", [])
    if rows:
        sizes = sorted({r["keys"] for r in rows})
        by = {(r["keys"], r["strategy"]): r for r in rows}
        out += ["Pattern purge: one conversation's 1,000 keys (`msg:history:{conv}:*`, shaped "
                "msg:history:{conv}:{limit}:{offset}) removed after the commit that invalidates them, in a Redis "
                "holding the given number of such keys. Daemon with the SCAN strategy (`pattern_index = 0`) and "
                "with the index sets kept in Redis (`pattern_index = 1`, the default); anchor: `redis-cli --scan --pattern ... | xargs redis-cli unlink` on the "
                "same keyspace.", "",
                "| keys in Redis | daemon, SCAN ms | daemon, index ms | anchor: redis-cli scan + unlink ms "
                "| index speedup vs anchor |", "|---|---|---|---|---|"]
        for k in sizes:
            scan, index = by.get((k, "scan"), {}), by.get((k, "index"), {})
            anchor = scan.get("redis_cli_ms")
            speed = anchor / index["daemon_ms"] if anchor and index.get("daemon_ms") else None
            out.append(f"| {k:,} | {fmt(scan.get('daemon_ms'))} | {fmt(index.get('daemon_ms'))} | {fmt(anchor)} "
                       f"| {fmt(speed, 1)} |")
        fig, a = plt.subplots(figsize=(6, 4))
        for strategy, label, color in (("scan", "daemon, SCAN", "tab:orange"), ("index", "daemon, key index", "tab:red")):
            xs = [k for k in sizes if (k, strategy) in by]
            a.plot(xs, [by[(k, strategy)]["daemon_ms"] for k in xs], "o-", label=label, color=color)
        xs = [k for k in sizes if by.get((k, "scan"), {}).get("redis_cli_ms")]
        a.plot(xs, [by[(k, "scan")]["redis_cli_ms"] for k in xs], "o--", label="redis-cli --scan | xargs unlink",
               color=COLORS["direct"])
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("keys in Redis")
        a.set_ylabel("ms to purge one conversation (1,000 keys)")
        a.set_title("pattern purge time against keyspace size")
        a.grid(True, alpha=0.3, which="both")
        a.legend()
        pat_png = save(fig, plots_dir, "pattern_purge_vs_keyspace.png")
        out += ["", f"![pattern purge time against keyspace size]({rel}/{pat_png})", ""]
    return out


def cache_section(report, timeline, command, plots_dir, rel):
    out = ["## Query cache: the chat load with the cache on and off", ""]
    if command:
        out += [f"Command: `{command}`. Anchors in the same run: pgcohered with the cache off, Debian's "
                "PgBouncer, direct PostgreSQL.", ""]
    out += [demote(report) if report else "Not measured in this run (bench/cache wrote no report.md).", ""]
    if timeline:
        series = timeline.get("cache-on") or next(iter(timeline.values()))
        t = [p["t"] for p in series]
        ratio = [p["hits"] / (p["hits"] + p["misses"]) if p["hits"] + p["misses"] else float("nan") for p in series]
        fig, a1 = plt.subplots(figsize=(9, 4))
        a1.plot(t, ratio, color="tab:green", label="hit ratio")
        a1.set_ylim(0, 1.05)
        a1.set_xlabel("seconds")
        a1.set_ylabel("hit ratio (per second)")
        a2 = a1.twinx()
        for key, style in (("read_p50_ms", ":"), ("read_p99_ms", "-")):
            if any(key in p for p in series):
                a2.plot(t, [float("nan") if p.get(key) is None else p[key] for p in series], style, color="tab:red",
                        label=f"read {key.split('_')[1]}")
        a2.set_ylabel("read latency, ms")
        for p0, p1 in zip(series, series[1:]):
            if p0.get("burst"):
                a1.axvspan(p0["t"], p1["t"], color="tab:orange", alpha=0.15, lw=0)
        lines = a1.get_legend_handles_labels()[0] + a2.get_legend_handles_labels()[0]
        labels = a1.get_legend_handles_labels()[1] + a2.get_legend_handles_labels()[1]
        a1.legend(lines, labels, loc="lower left")
        a1.set_title("cache-on: hit ratio and read latency through bursts (shaded)")
        png = save(fig, plots_dir, "cache_burst_timeline.png")
        out += [f"![hit ratio and latency over time through a burst]({rel}/{png})", ""]
    else:
        out += ["The plot of hit ratio and latency over time through a burst needs a per-second timeline "
                "from bench/cache (cache/timeline.json: per target, a list of {t, burst, hits, misses, "
                "read_p50_ms, read_p99_ms}); this run's bench/cache did not write one.", ""]
    return out


def extension_section(report, command):
    out = ["## Extension: commit overhead of publishing invalidations", ""]
    if command:
        out += [f"Command: `{command}`. Anchors in the same run: no rule, and a PL/pgSQL trigger calling "
                "pg_notify per row.", ""]
    return out + [demote(report) if report else "Not measured in this run (bench/extension wrote no report.md).", ""]


def render(out_dir, doc_path, plots_dir):
    env = load(os.path.join(out_dir, "env.json")) or {}
    rel = os.path.relpath(plots_dir, os.path.dirname(doc_path))
    os.makedirs(plots_dir, exist_ok=True)
    lines = ["# Benchmarks", "",
             "Written by `make bench-report` (bench/report/run.sh) from one run; every table sits beside its "
             "anchor measured in the same run. Do not edit by hand: rerun it.", "",
             f"- Date: {env.get('date', 'unknown')} (run took {env.get('minutes', '?')} min)",
             f"- Machine: {env.get('cpu', 'unknown')}, {env.get('cores', '?')} cores, {env.get('memory', '?')} "
             f"memory; {env.get('os', '')}; kernel {env.get('kernel', '')}",
             f"- Software: {env.get('software', '')}",
             f"- Source: commit {env.get('commit', 'unknown')}",
             f"- Load average before: {env.get('load_before', '?')}, after: {env.get('load_after', '?')}",
             f"- Command: `{env.get('command', 'make bench-report')}`", ""]
    lines += pooler_section(load(os.path.join(out_dir, "pooler_sweep.json")), plots_dir, rel)
    lines += invalidation_section(load(os.path.join(out_dir, "invalidation.json")), plots_dir, rel)
    lines += cache_section(load(os.path.join(out_dir, "cache", "report.md")),
                           load(os.path.join(out_dir, "cache", "timeline.json")), env.get("cache_command"),
                           plots_dir, rel)
    lines += extension_section(load(os.path.join(out_dir, "extension", "report.md")), env.get("extension_command"))
    failures = env.get("failures") or []
    if failures:
        lines += ["## Steps that failed in this run", ""] + [f"- {f}" for f in failures] + [""]
    with open(doc_path, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--in", dest="out_dir", required=True, help="the run's output directory")
    ap.add_argument("--doc", required=True, help="the Markdown file to write (docs/benchmarks.md)")
    ap.add_argument("--plots", required=True, help="directory for the PNGs (docs/benchmarks)")
    args = ap.parse_args()
    render(args.out_dir, args.doc, args.plots)
    return 0


if __name__ == "__main__":
    sys.exit(main())

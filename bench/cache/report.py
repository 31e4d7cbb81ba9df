"""The cache benchmark's markdown report: the four targets side by side, the ratios, the
issue's targets with what was measured (reported, not asserted), and every failed case."""
import math
import time


def _f(v, digits=2):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}"


def _pct(v):
    return "-" if v is None or math.isnan(v) else f"{100 * v:.1f} %"


def _div(a, b):
    return a / b if a is not None and b and not math.isnan(a) and not math.isnan(b) else float("nan")


def render(chat, bench, hit, failures, opts, args, env):
    lines = [f"# query cache benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
             f"Command: `bench/cache/run.sh OUT {env['argv']}` (bench.py options; {env['minutes']:.1f} min). "
             f"Load average before: {env['before']}, after: {env['after']} (2 cores, shared with other builds).", "",
             f"Chat load: {opts.clients} clients, {opts.duration:g} s measured after {opts.warmup:g} s warm-up, "
             f"median of {args.repeats} interleaved repeats per target; think time {opts.think_ms:g} ms (exponential); "
             f"{100 * opts.writes:g} % writes (2/3 new messages, 1/3 profile edits); Zipf s={opts.zipf:g} over "
             f"{opts.conversations} conversations and {opts.users} users; a burst every {opts.burst_every:g} s for "
             f"{opts.burst_len:g} s: clients go {opts.burst_factor:g}x faster and the extra traffic goes to one cold "
             f"conversation ({100 * (opts.writes if opts.burst_writes < 0 else opts.burst_writes):g} % posts to it, "
             f"the rest reads of it). Latency: per statement, client side. DB QPS: pg_stat_statements calls "
             f"in the chat database per ~1 s window; CV = stddev/mean over those windows. Pool size 20, "
             f"transaction mode.", ""]
    if chat:
        lines += ["| target | client TPS | p50 ms | p95 ms | p99 ms | read p95 ms | write p95 ms | DB QPS | DB QPS CV "
                  "| errors | stale after own commit | stale >100 ms across clients | pooler CPU us/tx "
                  "| machine CPU us/tx | pooler RSS MiB (peak) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for label, m in chat.items():
            lines.append(
                f"| {label} | {_f(m['client_tps'], 0)} | {_f(m['p50'])} | {_f(m['p95'])} | {_f(m['p99'])} "
                f"| {_f(m['read_p95'])} | {_f(m['write_p95'])} | {_f(m['db_qps'], 0)} | {_f(m['db_cv'])} "
                f"| {m['errors']} | {m['own_stale']} / {m['own_checks']} | {m['cross_stale']} / {m['cross_checks']} "
                f"| {_f(m['cpu_us'], 1) if m['cpu_us'] else '-'} | {_f(m['machine_us'], 0)} "
                f"| {_f(m['rss_mb'], 1)} ({_f(m['hwm_mb'], 1)}) |")
        for label, m in chat.items():
            if m["errors_sample"]:
                lines.append(f"\n{label} errors (first kinds): {m['errors_sample']}")
        on, off, bouncer = chat.get("cache-on"), chat.get("cache-off"), chat.get("pgbouncer")
        if on:
            lines += ["", f"cache-on: hit ratio (hits / cacheable requests) {_pct(on.get('hit_burst'))} in bursts, "
                      f"{_pct(on.get('hit_calm'))} outside them; cacheable requests answered without a query of their own "
                      f"(hits, and misses answered by an identical miss in flight) {_pct(on.get('served_burst'))} "
                      f"in bursts, {_pct(on.get('served_calm'))} outside; an ideal coherent cache on the same "
                      f"requests (bench/cache/ideal.py) {_pct(on.get('ideal_burst'))} in bursts, "
                      f"{_pct(on.get('ideal_calm'))} outside; measured write share "
                      f"{_pct(on.get('write_share'))} of statements (cache-off {_pct((off or {}).get('write_share'))}); "
                      f"Redis CPU {_f(on.get('redis_us'), 1)} us/tx; SHOW CACHE over the last run: "
                      f"{on.get('cache_counters')}."]
            for name, other in (("cache-off", off), ("pgbouncer", bouncer)):
                if other:
                    lines.append(f"cache-on vs {name}: p95 {_f(_div(on['p95'], other['p95']))}x, "
                                 f"p99 {_f(_div(on['p99'], other['p99']))}x, DB QPS CV "
                                 f"{_f(_div(on['db_cv'], other['db_cv']))}x, DB QPS {_f(_div(on['db_qps'], other['db_qps']))}x, "
                                 f"client TPS {_f(_div(on['client_tps'], other['client_tps']))}x, pooler CPU/tx "
                                 f"{_f(_div(on['cpu_us'], other['cpu_us']))}x, machine CPU/tx "
                                 f"{_f(_div(on['machine_us'], other['machine_us']))}x.")
    if bench:
        lines += ["", f"`pgbench -S -c {args.pgbench_clients} -j 2 -T {args.pgbench_duration}` (scale 10) through "
                  f"pgcohered, [cache] enabled = 1 but no policy on pgbench's tables, vs the cache off; median of "
                  f"{args.repeats}:", "", "| target | TPS | p50 ms | p99 ms | pooler CPU us/tx | machine CPU us/tx |",
                  "|---|---|---|---|---|---|"]
        for label, (tps, p50, p99, cpu, busy) in bench.items():
            lines.append(f"| {label} | {tps:.0f} | {p50:.2f} | {p99:.2f} | {cpu:.1f} | {busy:.1f} |")
    if hit:
        lines += ["", f"One hit, quiet system, one sequential client, median of {hit['samples']} "
                  f"({hit['hits_counted']} counted as hits): hit {_f(hit['hit_ms'], 3)} ms; lone Sync answered by "
                  f"the pooler {_f(hit['sync_ms'], 3)} ms; the daemon's lookup round trip (hit-latency histogram "
                  f"median) {_f(hit['lookup_rtt_ms'], 3)} ms; Redis PING from the client {_f(hit['redis_ping_ms'], 3)} "
                  f"ms; the same statement with the cache off {_f(hit['cache_off_ms'], 3)} ms, direct "
                  f"{_f(hit['direct_ms'], 3)} ms. Daemon time beyond one Redis round trip = hit - Sync - lookup = "
                  f"{_f(hit.get('daemon_beyond_redis_ms'), 3)} ms."]
    lines += ["", "## Targets (reported, not asserted)", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {met} |" for name, value, met in _targets(chat, bench, hit)]
    if failures:
        lines += ["", "## Failed cases", ""]
        lines += [f"- {case} {label}: {reason}" for case, label, reason in failures]
    return "\n".join(lines) + "\n"


def _met(ok):
    return "-" if ok is None else ("yes" if ok else "**no**")


def _targets(chat, bench, hit):
    on, off = chat.get("cache-on"), chat.get("cache-off")
    out = []
    if on:
        hb = on.get("hit_burst")
        out.append(("hit ratio >= 90 % in bursts", f"{_pct(hb)} (without a query of their own: "
                    f"{_pct(on.get('served_burst'))}; an ideal coherent cache: {_pct(on.get('ideal_burst'))})", _met(None if hb is None or math.isnan(hb) else hb >= 0.9)))
        stale = on["own_stale"]
        out.append(("0 stale reads after the writer's commit", f"{stale} of {on['own_checks']} checks",
                    _met(stale == 0)))
    if on and off:
        p95 = _div(on["p95"], off["p95"])
        out.append(("p95 <= 0.5x cache-off", f"{_f(p95)}x", _met(None if math.isnan(p95) else p95 <= 0.5)))
        cv = _div(on["db_cv"], off["db_cv"])
        out.append(("DB QPS variance (CV) <= 0.5x cache-off", f"{_f(cv)}x", _met(None if math.isnan(cv) else cv <= 0.5)))
    if hit and hit.get("daemon_beyond_redis_ms") is not None:
        d = hit["daemon_beyond_redis_ms"]
        out.append(("a hit costs <= one Redis round trip + 0.1 ms in the daemon", f"{_f(d, 3)} ms beyond the round trip",
                    _met(d <= 0.1)))
    if bench.get("cache-on") and bench.get("cache-off"):
        r = bench["cache-on"][0] / bench["cache-off"][0]
        out.append(("pgbench -S, cache on, no policy matching >= 0.97x cache-off TPS", f"{r:.3f}x", _met(r >= 0.97)))
    return out

"""Invalidation numbers for `make bench-report`, in one run:
  latency   commit-to-purge at a paced rate: pgcohered (extension + daemon; the CDF from the
            daemon's histogram, the extension stamps the commit time) beside its anchor, a
            plain PL/pgSQL trigger calling pg_notify and a Python LISTEN client that UNLINKs
            (the hand-written invalidation pgcohere replaces), timed from the trigger's
            clock_timestamp() to the UNLINK reply;
  patterns  one conversation's pattern purge (1,000 keys) in keyspaces of several sizes, by
            the daemon (SCAN strategy and key index) beside `redis-cli --scan | xargs unlink`.
Writes OUT/invalidation.json. Reuses bench/invalidation/bench.py's setup and helpers."""
import argparse
import asyncio
import importlib.util
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
_spec = importlib.util.spec_from_file_location("inv_bench", os.path.join(REPO, "bench", "invalidation", "bench.py"))
inv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(inv)

import asyncpg  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

PLAIN_TRIGGER = """
CREATE TABLE plain_conversations (id int PRIMARY KEY, title text);
INSERT INTO plain_conversations SELECT g, 't' FROM generate_series(1, 10000) g;
CREATE FUNCTION plain_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('plain_inv', 'conv:metadata:' || NEW.id || ' ' || extract(epoch FROM clock_timestamp()));
  RETURN NEW;
END $$;
CREATE TRIGGER plain_notify AFTER UPDATE ON plain_conversations FOR EACH ROW EXECUTE FUNCTION plain_notify();
"""


def cdf_from_buckets(before, after):
    """[(le_ms, fraction of observations <= le)] between two scrapes."""
    diff = [(le, a - b) for (le, a), (_, b) in zip(after, before)]
    total = diff[-1][1] if diff else 0
    return [(le, c / total) for le, c in diff if le != float("inf")] if total else []


def daemon_latency(s, seconds, rate):
    d = s.daemon or s.start_daemon(pattern_index=False)
    r = s.redis.client()
    r.mset({f"conv:metadata:{i}": "x" for i in range(1, 10001)})
    text0 = inv.scrape(d.metrics_port)
    achieved = asyncio.run(inv.paced(s.pg, rate, seconds, lambda i: (
        "UPDATE conversations SET title = $1 WHERE id = $2", (str(i), i % 10000 + 1))))
    time.sleep(0.5)
    text1 = inv.scrape(d.metrics_port)
    h0, h1 = inv.histogram(text0), inv.histogram(text1)
    out = {"achieved_tx_per_s": round(achieved, 1), "cdf": cdf_from_buckets(h0, h1)}
    for q in (0.5, 0.95, 0.99):
        out[f"p{int(q * 100)}_ms"] = inv.quantile(h0, h1, q)[0]
    return out


async def plain_latency(pg, redis_url, seconds, rate):
    """The anchor: trigger + pg_notify, a LISTEN client that UNLINKs each key."""
    r = aioredis.from_url(redis_url)
    listener = await asyncpg.connect(host=pg.host, port=pg.port, user="postgres", database=inv.DB)
    lat, pending = [], set()

    async def purge(payload):
        key, stamp = payload.rsplit(" ", 1)
        await r.unlink(key)
        lat.append((time.time() - float(stamp)) * 1000)

    def on_notify(_conn, _pid, _channel, payload):
        t = asyncio.ensure_future(purge(payload))
        pending.add(t)
        t.add_done_callback(pending.discard)

    await listener.add_listener("plain_inv", on_notify)
    loop = asyncio.get_running_loop()
    achieved = await loop.run_in_executor(None, lambda: asyncio.run(inv.paced(pg, rate, seconds, lambda i: (
        "UPDATE plain_conversations SET title = $1 WHERE id = $2", (str(i), i % 10000 + 1)))))
    await asyncio.sleep(0.5)
    if pending:
        await asyncio.gather(*pending)
    await listener.close()
    await r.aclose() if hasattr(r, "aclose") else await r.close()
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] if lat else None  # noqa: E731
    return {"achieved_tx_per_s": round(achieved, 1), "purged": len(lat), "p50_ms": pick(0.5),
            "p95_ms": pick(0.95), "p99_ms": pick(0.99), "samples_ms": lat[:: max(1, len(lat) // 2000)]}


def purge_conversation(s, conv, r):
    """ms from the commit of a message in `conv` until none of its 1,000 keys is left. (The
    key count of Redis is no measure: the daemon writes its applied watermark alongside.)"""
    keys = [f"msg:history:{conv}:{i // 50}:{i % 50}" for i in range(1000)]
    assert r.exists(*keys) == 1000
    with s.pg.connect(inv.DB) as c:
        t0 = time.perf_counter()
        c.execute("INSERT INTO messages (conversation_id, body) VALUES (%s, 'hi')", (conv,))
    deadline = t0 + 120
    while r.exists(*keys):
        if time.perf_counter() > deadline:
            raise TimeoutError(f"conversation {conv} not purged in 120 s")
        time.sleep(0.0005)
    return (time.perf_counter() - t0) * 1000


def redis_cli_purge(s, conv, r):
    """The anchor: ms of `redis-cli --scan --pattern ... | xargs redis-cli unlink`."""
    keys = [f"msg:history:{conv}:{i // 50}:{i % 50}" for i in range(1000)]
    assert r.exists(*keys) == 1000
    t0 = time.perf_counter()
    inv.subprocess.run(f"redis-cli -p {s.redis.port} --scan --pattern 'msg:history:{conv}:*' | "
                       f"xargs redis-cli -p {s.redis.port} unlink > /dev/null", shell=True, check=True)
    ms = (time.perf_counter() - t0) * 1000
    assert r.exists(*keys) == 0
    return ms


def pattern_sweep(s, sizes):
    r = s.redis.client()
    rows = []
    for strategy, index in (("scan", False), ("index", True)):
        for keys in sizes:
            # An empty Redis first, then the daemon (its start-up resync purges the rules'
            # patterns; its index starts empty), then the keyspace, which the index follows.
            r.flushall()
            d = s.start_daemon(pattern_index=index)
            convs = max(3, keys // 1000)
            inv.load_keyspace(r, convs=convs, per_conv=1000)
            if index:
                inv.wait_indexed(d, convs * 1000)
            row = {"keys": r.dbsize(), "strategy": strategy, "daemon_ms": round(purge_conversation(s, 2, r), 2)}
            if not index:
                row["redis_cli_ms"] = round(redis_cli_purge(s, 3, r), 1)
            rows.append(row)
            print(f"  patterns {row}", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=int, default=20, help="seconds of paced commits per latency run")
    ap.add_argument("--rate", type=int, default=1000, help="commits per second")
    ap.add_argument("--keyspaces", default="10000,100000,1000000")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    base = inv.temp_dir("report-inv-")
    s = inv.Setup(base)
    result = {"seconds": args.seconds, "rate": args.rate, "keyspaces": args.keyspaces}
    try:
        with s.pg.connect(inv.DB) as c:
            c.execute(PLAIN_TRIGGER)
        s.start_daemon(pattern_index=False)
        result["plain_trigger"] = asyncio.run(plain_latency(s.pg, s.redis.url, args.seconds, args.rate))
        print("  plain trigger + pg_notify:", {k: v for k, v in result["plain_trigger"].items() if k != "samples_ms"},
              flush=True)
        result["pgcohered"] = daemon_latency(s, args.seconds, args.rate)
        print("  pgcohered:", {k: v for k, v in result["pgcohered"].items() if k != "cdf"}, flush=True)
        result["patterns"] = pattern_sweep(s, [int(k) for k in args.keyspaces.split(",")])
    finally:
        s.stop()
        inv.subprocess.run(["rm", "-rf", base])
    with open(os.path.join(args.out, "invalidation.json"), "w") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

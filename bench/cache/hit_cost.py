"""What one cache hit costs, measured on a quiet system by one sequential client:
  * a hit through pgcohered (the same cached statement again and again);
  * a lone Sync through pgcohered, which the pooler answers itself (loopback + the daemon's
    own message handling, no server, no Redis);
  * a PING to Redis from the same client (one Redis round trip on loopback);
  * the daemon's own lookup round trip (the pgcohere_cache_hit_latency_ms histogram: from
    sending the lookup script to its reply, on the daemon's loop);
  * the same statement through pgcohered with the cache off, and directly to PostgreSQL.
The daemon's time for a hit beyond one Redis round trip is then about
hit - Sync - lookup round trip (target: at most 0.1 ms)."""
import asyncio
import statistics
import time

from common.metrics import histogram, quantile, scrape
from common.wire import Connection

from schema import PROFILE

HIT_HISTOGRAM = "pgcohere_cache_hit_latency_ms"


async def _median_ms(n, call):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


async def _redis_ping_ms(port, n):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def ping():
        writer.write(b"PING\r\n")
        await reader.readline()

    try:
        return await _median_ms(n, ping)
    finally:
        writer.close()


async def _hits(on, n, cache_hits):
    """Median ms of n sequential hits, and how many of them SHOW CACHE counted as hits."""
    c = await Connection.connect(on.port, "bench")
    try:
        query = lambda: c.query(PROFILE, (1,))  # noqa: E731
        for _ in range(50):  # the policies reach the daemon asynchronously: warm until it hits
            before = await cache_hits()
            await query()
            if await cache_hits() > before:
                break
            await asyncio.sleep(0.1)
        before_hits, before_text = await cache_hits(), scrape(on.metrics_port)
        hit_ms = await _median_ms(n, query)
        after_hits, after_text = await cache_hits(), scrape(on.metrics_port)
        lookup_ms, _ = quantile(histogram(before_text, HIT_HISTOGRAM), histogram(after_text, HIT_HISTOGRAM), 0.5)
        sync_ms = await _median_ms(n, c.sync)
        return hit_ms, after_hits - before_hits, lookup_ms, sync_ms
    finally:
        c.close()


async def _plain(port, dbname, n):
    c = await Connection.connect(port, dbname)
    try:
        return await _median_ms(n, lambda: c.query(PROFILE, (1,)))
    finally:
        c.close()


async def measure(on, off, pg_port, redis_port, cache_hits, n=2000):
    hit_ms, hits, lookup_ms, sync_ms = await _hits(on, n, cache_hits)
    out = {
        "samples": n, "hits_counted": hits, "hit_ms": hit_ms, "sync_ms": sync_ms, "lookup_rtt_ms": lookup_ms,
        "redis_ping_ms": await _redis_ping_ms(redis_port, n),
        "cache_off_ms": await _plain(off.port, "bench", n), "direct_ms": await _plain(pg_port, "chat", n),
    }
    if lookup_ms is not None:
        out["daemon_beyond_redis_ms"] = hit_ms - sync_ms - lookup_ms
    return out

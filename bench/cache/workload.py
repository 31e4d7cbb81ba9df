"""The chat load: N clients with think times, a Zipf read mix, 5-10 % writes, and bursts in
which one conversation takes most of the traffic. Bounded: every client stops at the
deadline, every statement has a timeout. Measures latencies, errors, and stale reads by
the versions it reads back (see check_read)."""
import asyncio
import bisect
import random
import time
from dataclasses import dataclass, field

from common.measure import percentile
from common.wire import Connection, columns

from ideal import ideal_hit_ratios
from schema import COUNT, EDIT_PROFILE, HISTORY, METADATA, PAGE, POST, PROFILE, TTL_S

CONVERSATION_SEED = 1  # the rank-to-id shuffle of conversations, shared with the seed data
PARTICIPANTS = 20  # members of a conversation whose profiles its readers open
STALE_INFO_MS = 100  # cross-client: a read this much older than the newest commit is counted


@dataclass
class Options:
    clients: int = 500
    duration: float = 30.0  # measured seconds, after the warm-up
    warmup: float = 15.0  # half the shortest TTL: the cache measured near its steady state
    think_ms: float = 400.0  # mean pause between a client's statements (exponential)
    writes: float = 0.10  # share of statements that write: 2/3 new messages, 1/3 profile edits
    zipf: float = 1.1
    conversations: int = 10000
    users: int = 5000
    # Messages of the most-read conversation beyond its 5-64 (rank k gets this / k): long
    # busy conversations, whose counts cost PostgreSQL milliseconds (schema.conversation_sizes).
    top_messages: int = 100000
    burst_every: float = 12.0  # a burst starts every this many seconds (first at 4 s)
    burst_len: float = 4.0
    burst_factor: float = 4.0  # clients run this much faster in a burst, the extra on the hot conversation
    # Share of that extra traffic that posts to it (< 0: the same as writes). A conversation
    # goes viral by being read: many readers, few posters. Every post invalidates its pages,
    # so a write-heavy burst (--burst-writes 0.1) bounds any coherent cache's hit ratio; the
    # report gives the run's overall write share, which stays within the 5-10 %.
    burst_writes: float = 0.01
    timeout: float = 10.0  # per statement


class Zipf:
    """Ranks 1..n with P(k) ~ 1/k^s, mapped to ids by a fixed shuffle (hot ids spread out)."""

    def __init__(self, n, s, seed):
        acc, self.cdf = 0.0, []
        for k in range(1, n + 1):
            acc += 1.0 / k**s
            self.cdf.append(acc)
        self.ids = list(range(1, n + 1))
        random.Random(seed).shuffle(self.ids)

    def draw(self, rng):
        return self.ids[min(len(self.ids) - 1, bisect.bisect_left(self.cdf, rng.random() * self.cdf[-1]))]

    def cold(self, rng):
        """An id from the tail (rank above n/10): a conversation that suddenly goes viral."""
        return self.ids[rng.randrange(len(self.ids) // 10, len(self.ids))]


class Bursts:
    def __init__(self, opts, start, zipf, seed):
        rng = random.Random(seed)
        self.windows = []
        t = 4.0
        while t < opts.warmup + opts.duration:
            self.windows.append((start + t, start + t + opts.burst_len, zipf.cold(rng)))
            t += opts.burst_every

    def hot(self, now):
        for begin, end, conv in self.windows:
            if begin <= now < end:
                return conv
        return None

    def covers(self, t0, t1):
        """Whether the interval's middle lies in a burst."""
        mid = (t0 + t1) / 2
        return any(begin <= mid < end for begin, end, _ in self.windows)


class VersionLog:
    """Per key, the versions whose write had returned to its client, and when."""

    def __init__(self):
        self.times, self.best = {}, {}

    def committed(self, key, t, version):
        times, best = self.times.setdefault(key, []), self.best.setdefault(key, [])
        times.append(t)
        best.append(max(version, best[-1]) if best else version)

    def newest_before(self, key, t):
        times = self.times.get(key)
        if not times:
            return None
        i = bisect.bisect_left(times, t)
        return self.best[key][i - 1] if i else None


@dataclass
class Result:
    read_ms: list = field(default_factory=list)
    write_ms: list = field(default_factory=list)
    ops_per_second: dict = field(default_factory=dict)
    errors: int = 0
    error_samples: dict = field(default_factory=dict)
    own_checks: int = 0  # reads right after the client's own write returned
    own_stale: int = 0  # ... that saw an older version than it wrote
    cross_checks: int = 0  # every read that shows a version
    cross_stale: int = 0  # ... older than a version committed STALE_INFO_MS before it started
    worst_stale_ms: float = 0.0
    transactions: int = 0
    writes: int = 0  # measured statements that wrote (the write share is writes / transactions)
    read_ms_by_second: dict = field(default_factory=dict)  # whole seconds since the start -> read latencies

    def summary(self):
        r, w = sorted(self.read_ms), sorted(self.write_ms)
        both = sorted(self.read_ms + self.write_ms)
        return {
            "transactions": self.transactions, "errors": self.errors,
            "read_p50": percentile(r, 0.5), "read_p95": percentile(r, 0.95), "read_p99": percentile(r, 0.99),
            "write_p50": percentile(w, 0.5), "write_p95": percentile(w, 0.95), "write_p99": percentile(w, 0.99),
            "p50": percentile(both, 0.5), "p95": percentile(both, 0.95), "p99": percentile(both, 0.99),
            "own_checks": self.own_checks, "own_stale": self.own_stale,
            "cross_checks": self.cross_checks, "cross_stale": self.cross_stale,
            "write_share": self.writes / self.transactions if self.transactions else float("nan"),
        }


class Load:
    def __init__(self, port, dbname, opts, seed):
        self.port, self.dbname, self.opts, self.seed = port, dbname, opts, seed
        self.convs = Zipf(opts.conversations, opts.zipf, CONVERSATION_SEED)
        self.users = Zipf(opts.users, opts.zipf, 2)
        self.versions = VersionLog()
        self.result = Result()
        self.loop = None
        self.start = self.measure_from = self.end = 0.0
        self.bursts = None
        # Every read (start, tag, key) and write (returned, tag), warm-up included: the
        # stream an ideal cache is replayed on (ideal.py).
        self.reads, self.writes = [], []

    async def run(self, on_second=None):
        """Runs the load; on_second(t) is awaited about once a second (the samplers)."""
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time()
        self.measure_from = self.start + self.opts.warmup
        self.end = self.measure_from + self.opts.duration
        self.bursts = Bursts(self.opts, self.start, self.convs, self.seed)
        clients = [asyncio.create_task(self.client(i)) for i in range(self.opts.clients)]
        while self.loop.time() < self.end:
            if on_second:
                await on_second(self.loop.time())
            await asyncio.sleep(1.0 - (self.loop.time() - self.start) % 1.0)
        if on_second:
            await on_second(self.loop.time())
        done, pending = await asyncio.wait(clients, timeout=self.opts.timeout + 5)
        for t in pending:
            t.cancel()
        for t in done:
            if t.exception():
                self.fail(t.exception())
        return self.result

    def fail(self, exc):
        self.result.errors += 1
        text = f"{type(exc).__name__}: {exc}"[:200]
        self.result.error_samples[text] = self.result.error_samples.get(text, 0) + 1

    async def client(self, i):
        rng = random.Random(self.seed * 100003 + i)
        conn = None
        await asyncio.sleep(rng.uniform(0, self.opts.think_ms / 1000.0))
        while self.loop.time() < self.end:
            try:
                if conn is None:
                    conn = await Connection.connect(self.port, self.dbname, timeout=self.opts.timeout)
                factor = await self.one(conn, rng)
            except Exception as e:  # noqa: BLE001 - counted, the client reconnects and goes on
                if self.loop.time() >= self.measure_from:
                    self.fail(e)
                if conn:
                    conn.close()
                conn = None
                factor = 1.0
                await asyncio.sleep(0.2)
            pause = rng.expovariate(factor * 1000.0 / self.opts.think_ms)
            await asyncio.sleep(min(pause, max(0.0, self.end - self.loop.time())))
        if conn:
            conn.close()

    async def one(self, conn, rng):
        """One statement (or a write and its check); returns the speed factor (burst or not)."""
        hot = self.bursts.hot(self.loop.time())
        factor = self.opts.burst_factor if hot else 1.0
        conv = hot if hot and rng.random() < (factor - 1) / factor else None
        x = rng.random()
        w = self.opts.writes
        if conv is not None and self.opts.burst_writes >= 0:
            w = self.opts.burst_writes
        if conv is None and x < w / 3:
            await self.edit_profile(conn, rng, self.users.draw(rng))
            return factor
        conv = conv or self.convs.draw(rng)
        if x < w:
            await self.post(conn, rng, conv)
        elif x < w + (1 - w) * 0.45:
            page = 0 if rng.random() < 0.7 else rng.choice((1, 1, 2))
            await self.read(conn, ("c", conv), HISTORY, (conv, PAGE, page * PAGE), 3 if page == 0 else None)
        elif x < w + (1 - w) * 0.6:
            await self.read(conn, ("c", conv), COUNT, (conv,), 1)
        elif x < w + (1 - w) * 0.8:
            await self.read(conn, ("c", conv), METADATA, (conv,), 3)
        else:
            # The burst's readers open the profiles of the hot conversation's participants;
            # other profile views follow the users' own popularity.
            user = self.participant(conv, rng) if conv == hot else self.users.draw(rng)
            await self.read(conn, ("u", user), PROFILE, (user,), 3)
        return factor

    def ideal_hit_ratios(self):
        """{in burst: ratio} of an ideal coherent cache on this run's stream (ideal.py)."""
        return ideal_hit_ratios(self.reads, self.writes, lambda key: TTL_S[key[0]],
                                lambda t: self.measure_from <= t < self.end, self.bursts.hot)

    def participant(self, conv, rng):
        """One of the conversation's PARTICIPANTS most active members (the seed's authors of
        its messages are the users after conv * 7)."""
        return 1 + (conv * 7 + rng.randint(1, PARTICIPANTS)) % self.opts.users

    async def timed(self, conn, sql, params):
        t0 = self.loop.time()
        rows = await asyncio.wait_for(conn.query(sql, params), self.opts.timeout)
        t1 = self.loop.time()
        if t0 >= self.measure_from and t1 <= self.end:
            self.result.transactions += 1
            second = int(t1 - self.start)
            self.result.ops_per_second[second] = self.result.ops_per_second.get(second, 0) + 1
        return t0, t1, rows

    async def read(self, conn, key, sql, params, version_col, own=None):
        t0, t1, rows = await self.timed(conn, sql, params)
        self.reads.append((t0, key, (sql, params)))
        if t0 < self.measure_from or t1 > self.end:
            return
        self.result.read_ms.append((t1 - t0) * 1000)
        self.result.read_ms_by_second.setdefault(int(t1 - self.start), []).append((t1 - t0) * 1000)
        if version_col is None or not rows:
            return
        value = columns(rows[0])[version_col]
        self.check_read(key, t0, int(value) if value is not None else 0, own)

    def check_read(self, key, t0, seen, own):
        """own: the version this client's write got, which returned before the read began:
        reading less is a stale read after the writer's commit (the target is 0). Across
        clients: a version older than one committed STALE_INFO_MS before the read began is
        counted as information (the invalidation latency bounds it, not a guarantee)."""
        r = self.result
        if own is not None:
            r.own_checks += 1
            if seen < own:
                r.own_stale += 1
        newest = self.versions.newest_before(key, t0 - STALE_INFO_MS / 1000.0)
        r.cross_checks += 1
        if newest is not None and seen < newest:
            r.cross_stale += 1

    def count_write(self, t0, t1):
        if t0 >= self.measure_from and t1 <= self.end:
            self.result.write_ms.append((t1 - t0) * 1000)
            self.result.writes += 1

    async def post(self, conn, rng, conv):
        author = self.users.draw(rng)
        t0, t1, rows = await self.timed(conn, POST, (conv, author, f"hello from {author} at {time.time():.3f}"))
        version = int(columns(rows[0])[0])
        self.versions.committed(("c", conv), t1, version)
        self.writes.append((t1, ("c", conv)))
        self.count_write(t0, t1)
        await self.read(conn, ("c", conv), HISTORY, (conv, PAGE, 0), 3, own=version)

    async def edit_profile(self, conn, rng, user):
        t0, t1, rows = await self.timed(conn, EDIT_PROFILE, (user, f"bio {rng.random():.6f}"))
        version = int(columns(rows[0])[0])
        self.versions.committed(("u", user), t1, version)
        self.writes.append((t1, ("u", user)))
        self.count_write(t0, t1)
        await self.read(conn, ("u", user), PROFILE, (user,), 3, own=version)


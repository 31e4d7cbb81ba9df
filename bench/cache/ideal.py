"""The hit ratio an ideal coherent cache reaches on the load's own request stream.

The ideal cache fills at once and for free (a fill is visible to the next read, however
soon), never evicts, is invalidated at the moment a write returns, and keeps an entry for
its TTL. Any cache that never serves a read older than a returned write must miss at least
where it misses: at a key's first read, at the first read after the key's TTL ran out, and
at the first read after a write to its tag. So its ratio bounds what the measured cache can
reach on the same run, and the gap between the two is the cache's own loss."""
import heapq


def ideal_hit_ratios(reads, writes, ttl_s, counted, in_burst):
    """reads: (start time, tag, key); writes: (time the write returned, tag); ttl_s(key) in
    seconds; counted(t): whether a read at t is measured; in_burst(t): its class.
    Returns {True: ratio in bursts, False: ratio outside} (None where nothing was read)."""
    cached = {}  # key -> expiry time
    keys_of_tag = {}
    hits, total = {True: 0, False: 0}, {True: 0, False: 0}
    # At equal times a write goes first: the read started after it returned.
    events = heapq.merge(((t, 0, tag, None) for t, tag in sorted(writes)),
                         ((t, 1, tag, key) for t, tag, key in sorted(reads, key=lambda r: r[0])))
    for t, is_read, tag, key in events:
        if not is_read:
            for k in keys_of_tag.pop(tag, ()):
                cached.pop(k, None)
            continue
        hit = cached.get(key, float("-inf")) > t
        if not hit:
            cached[key] = t + ttl_s(key)
            keys_of_tag.setdefault(tag, set()).add(key)
        if counted(t):
            cls = bool(in_burst(t))
            total[cls] += 1
            hits[cls] += hit
    return {cls: (hits[cls] / total[cls] if total[cls] else None) for cls in (True, False)}

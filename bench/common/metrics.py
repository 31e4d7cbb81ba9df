"""Reading pgcohered's Prometheus endpoint: counters and histogram quantiles between scrapes."""
import re
import urllib.request


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def histogram(text, name="pgcohere_invalidation_latency_ms"):
    buckets = []
    for m in re.finditer(rf'^{name}_bucket\{{(?:[^}}]*,)?le="([^"]+)"\}} (\S+)$', text, re.M):
        le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
        buckets.append((le, float(m.group(2))))
    return sorted(buckets)


def quantile(before, after, q):
    """q-quantile of the observations between two scrapes, interpolated in its bucket."""
    diff = [(le, a - b) for (le, a), (_, b) in zip(after, before)]
    total = diff[-1][1]
    if total == 0:
        return None, 0
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in diff:
        if c >= rank:
            if le == float("inf"):
                return prev_le, total
            frac = (rank - prev_c) / (c - prev_c) if c > prev_c else 1
            return prev_le + (le - prev_le) * frac, total
        prev_le, prev_c = le, c
    return prev_le, total


def metric(text, name):
    return sum(float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.M))

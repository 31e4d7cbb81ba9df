"""Read-through caching that a purge cannot be raced by (the client example of
docs/invalidation.md, "Applications that fill the cache themselves", used by its tests
and by bench/invalidation/read_through.py).

The race it closes: a reader misses, SELECTs the row, a commit's purge goes by, and the
reader then SETs the value it read before the commit: that stale value would stay until
the key's next write. Here the reader first puts a lease in the key (SET NX with a random
token), reads PostgreSQL, and stores its value only if its lease is still in the key
(one-key Lua compare-and-set, Redis Cluster safe). pgcohered's purge of the key, or of a
pattern that covers it, deletes the lease like any value, so a fill that raced a purge
finds its lease gone and is dropped. Readers that see a lease treat it as a miss.

Needs only redis-py; no change to the daemon: the purge already deletes the key."""
import os

LEASE_PREFIX = b"\x00pgcohere-lease:"

# KEYS[1] = key, ARGV[1] = our lease, ARGV[2] = value, ARGV[3] = TTL in ms (0: none)
_FILL = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
"""


def is_lease(value):
    return value is not None and bytes(value).startswith(LEASE_PREFIX)


class ReadThrough:
    """get(key, load) returns the cached value, or load()'s, caching it unless a purge
    went by while load() ran. Values are bytes (what redis-py returns)."""

    def __init__(self, redis_client, ttl_ms=0, lease_ms=10_000):
        self.r = redis_client
        self.ttl_ms = ttl_ms
        self.lease_ms = lease_ms  # longer than any load(); an expired lease only drops the fill
        self.fill = self.r.register_script(_FILL)

    def lease(self, key):
        """Puts a lease in an absent key: its token, or None (a value or another lease is there)."""
        token = LEASE_PREFIX + os.urandom(16).hex().encode()
        return token if self.r.set(key, token, nx=True, px=self.lease_ms) else None

    def store(self, key, token, value):
        """Stores value if the lease `token` is still in the key: True if stored."""
        return self.fill(keys=[key], args=[token, value, self.ttl_ms]) == 1

    def get(self, key, load):
        value = self.r.get(key)
        if value is not None and not is_lease(value):
            return value
        token = self.lease(key)  # before load(): a commit after this point purges the lease
        value = load()
        if token is not None:
            self.store(key, token, value)
        return value

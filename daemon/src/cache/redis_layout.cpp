// The query cache's Redis scripts (see redis_layout.h and docs/cache.md).
#include "cache/redis_layout.h"

#include <openssl/sha.h>

#include <map>
#include <memory>

namespace pgcohere::cache {

namespace {
Script make(const char* name, std::string source) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(source.data()), source.size(), digest);
  static const char* hex = "0123456789abcdef";
  std::string sha;
  for (unsigned char b : digest) {
    sha.push_back(hex[b >> 4]);
    sha.push_back(hex[b & 15]);
  }
  return Script{name, std::move(source), std::move(sha)};
}
// Lua helpers the scripts share: the comparison of "<epoch> <pos>" numbers written in
// decimal (of any length: no float on the way), and a version value no earlier read can
// hold (Redis's clock in microseconds, or above the generation).
const char* const kLuaHelpers = R"lua(
local function less(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function generation(key)
  return tonumber(redis.call('GET', key) or '0')
end
local function fresh_version(gen_key)
  return string.format('%.0f', math.max(generation(gen_key), now_us()))
end
)lua";
}  // namespace

Layout::Layout(std::string_view key_namespace, std::string_view database) : database_(database) {
  prefix_.reserve(key_namespace.size() + database.size() + 3);
  prefix_.append(key_namespace).append("{").append(database).append("}:");
}

std::string scope_tag(std::string_view database, std::string_view tag) {
  std::string s;
  s.reserve(database.size() + 1 + tag.size());
  s.append(database).append("\n").append(tag);  // a database name has no newline
  return s;
}

std::pair<std::string_view, std::string_view> split_scoped_tag(std::string_view scoped) {
  auto nl = scoped.find('\n');
  if (nl == std::string_view::npos) return {std::string_view(), scoped};
  return {scoped.substr(0, nl), scoped.substr(nl + 1)};
}

// KEYS: entry, generation, applied, the entry's fill lease, then the versions (policy
// first, then the entry's tags).
// ARGV: version ttl (ms), the client's last published commit ("<epoch> <pos>", or ""),
// a lease token (or "": no lease) and the lease's life (ms).
// {2}: that commit's invalidations are not all purged yet (read-your-writes: PostgreSQL
// answers). A hit returns {1, value}. {3}: a miss whose fill another lookup leads, in this
// daemon or another (its lease is held). A miss {0, version...} took the lease, each missing
// version created at a value no earlier read can hold: Redis's clock in microseconds, or
// above the generation (a resync deletes versions and generation alike; one recreated
// afterwards must not equal one read before it).
const Script& lookup_script() {
  static const Script s = make("lookup", std::string(kLuaHelpers) + R"lua(
if ARGV[2] ~= '' then
  local mine_e, mine_p = string.match(ARGV[2], '^(%d+) (%d+)$')
  local done = redis.call('GET', KEYS[3])
  local done_e, done_p
  if done then done_e, done_p = string.match(done, '^(%d+) (%d+)$') end
  if not mine_e or not done_e or less(done_e, mine_e) or (done_e == mine_e and less(done_p, mine_p)) then
    return {2}
  end
end
local e = redis.call('GET', KEYS[1])
if e then return {1, e} end
if ARGV[3] ~= '' and not redis.call('SET', KEYS[4], ARGV[3], 'NX', 'PX', ARGV[4]) then return {3} end
local fresh = nil
local out = {0}
for i = 5, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if not v then
    if not fresh then fresh = fresh_version(KEYS[2]) end
    v = fresh
    redis.call('SET', KEYS[i], v, 'PX', ARGV[1])
  end
  out[#out + 1] = v
end
return out
)lua");
  return s;
}

// KEYS: entry, the k+1 versions (policy, tags), the k tag sets, the entry's fill lease.
// ARGV: entry ttl (ms), value, k, the k+1 versions the lookup returned, the lease token.
// Gives the lease up, then stores only if no version moved since the lookup: 1 stored, 0
// refused as stale.
const Script& fill_script() {
  static const Script s = make("fill", R"lua(
local k = tonumber(ARGV[3])
if redis.call('GET', KEYS[3 + 2 * k]) == ARGV[5 + k] then redis.call('DEL', KEYS[3 + 2 * k]) end
for i = 0, k do
  if redis.call('GET', KEYS[2 + i]) ~= ARGV[4 + i] then return 0 end
end
local ttl = tonumber(ARGV[1])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
for i = 1, k do
  local set = KEYS[2 + k + i]
  redis.call('SADD', set, KEYS[1])
  if redis.call('PTTL', set) < ttl then redis.call('PEXPIRE', set, ttl) end
end
return 1
)lua");
  return s;
}

// KEYS: generation, the tag's version, the tag's set. ARGV: version ttl (ms).
// The new version is never one used before, even after the generation key was lost
// (eviction, a resync's purge): it is at least Redis's clock in microseconds.
const Script& invalidate_script() {
  static const Script s = make("invalidate", std::string(kLuaHelpers) + R"lua(
local new = string.format('%.0f', math.max(generation(KEYS[1]) + 1, now_us()))
redis.call('SET', KEYS[1], new)
redis.call('SET', KEYS[2], new, 'PX', ARGV[1])
local members = redis.call('SMEMBERS', KEYS[3])
for i = 1, #members, 500 do
  redis.call('UNLINK', unpack(members, i, math.min(i + 499, #members)))
end
redis.call('UNLINK', KEYS[3])
return #members
)lua");
  return s;
}

const Script& release_script() {
  static const Script s = make("release", R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua");
  return s;
}

const Script& version_script() {
  static const Script s = make("version", std::string(kLuaHelpers) + R"lua(
local v = redis.call('GET', KEYS[1])
if not v then
  v = fresh_version(KEYS[2])
  redis.call('SET', KEYS[1], v, 'PX', ARGV[1])
end
return v
)lua");
  return s;
}

const Script& applied_script() {
  static const Script s = make("applied", std::string(kLuaHelpers) + R"lua(
local cur = redis.call('GET', KEYS[1])
if cur then
  local ce, cp = string.match(cur, '^(%d+) (%d+)$')
  local ne, np = string.match(ARGV[1], '^(%d+) (%d+)$')
  if not ne then return redis.error_reply('applied: bad value') end
  if ce and (less(ne, ce) or (ne == ce and less(np, cp))) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
)lua");
  return s;
}

void run_script(redis::Backend& backend, const Script& script, const std::vector<std::string>& keys,
                const std::vector<std::string>& args, redis::Backend::Callback done) {
  auto argv = [&](const char* verb, const std::string& body) {
    std::vector<std::string> v;
    v.reserve(3 + keys.size() + args.size());
    v.emplace_back(verb);
    v.push_back(body);
    v.push_back(std::to_string(keys.size()));
    v.insert(v.end(), keys.begin(), keys.end());
    v.insert(v.end(), args.begin(), args.end());
    return v;
  };
  auto eval = std::make_shared<std::vector<std::string>>(argv("EVAL", script.source));
  backend.keyed(argv("EVALSHA", script.sha1), 3,
                [&backend, eval, done = std::move(done)](redis::Reply r) mutable {
                  if (r.is_error() && r.str.rfind("NOSCRIPT", 0) == 0) {
                    backend.keyed(std::move(*eval), 3, std::move(done));
                    return;
                  }
                  done(std::move(r));
                });
}

namespace {
// One loop per process: plain data, no lock.
std::map<std::string, std::uint64_t, std::less<>>& invalidation_counts() {
  static std::map<std::string, std::uint64_t, std::less<>> counts;
  return counts;
}
}  // namespace

std::uint64_t invalidations_of(std::string_view database) {
  auto& counts = invalidation_counts();
  auto it = counts.find(database);
  return it == counts.end() ? 0 : it->second;
}

void invalidate_tag(redis::Backend& backend, const Layout& layout, std::string_view tag,
                    redis::Backend::Callback done) {
  // Counted once applied: SHOW CACHE's invalidations say what has taken effect.
  run_script(backend, invalidate_script(), {layout.generation(), layout.version(tag), layout.members(tag)},
             {std::to_string(kVersionTtlMs)},
             [database = layout.database(), done = std::move(done)](redis::Reply r) {
               if (!r.is_error()) ++invalidation_counts()[database];
               done(std::move(r));
             });
}

}  // namespace pgcohere::cache

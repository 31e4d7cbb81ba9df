// Where the query cache keeps its data in Redis, and the three scripts that make fills,
// lookups and invalidations atomic (docs/cache.md, "Redis layout"). Every key of one
// database shares the hash slot {<namespace><database>}, so the scripts run on one node of
// a Redis Cluster too.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "redis/backend.h"

namespace pgcohere::cache {

class Layout {
 public:
  Layout(std::string_view key_namespace, std::string_view database);
  std::string entry(std::string_view key_hash) const { return prefix_ + "e:" + std::string(key_hash); }
  std::string version(std::string_view tag) const { return prefix_ + "v:" + std::string(tag); }
  std::string members(std::string_view tag) const { return prefix_ + "s:" + std::string(tag); }
  std::string generation() const { return prefix_ + "gen"; }
  // Held by the lookup that leads an entry's fill, whichever daemon it runs in: identical
  // misses in other daemons wait for that fill instead of querying PostgreSQL too.
  std::string lease(std::string_view key_hash) const { return prefix_ + "l:" + std::string(key_hash); }
  // Read-your-writes: "<epoch> <pos>", every commit of the database up to that position
  // purged (the leading daemon writes it; invalidation/applied_watermark.h). Missing: no
  // position is known to be purged.
  std::string applied() const { return prefix_ + "applied"; }
  const std::string& prefix() const { return prefix_; }
  const std::string& database() const { return database_; }

 private:
  std::string database_;
  std::string prefix_;
};

// A tag together with its database, as one string (purge jobs and the journal carry it).
std::string scope_tag(std::string_view database, std::string_view tag);
std::pair<std::string_view, std::string_view> split_scoped_tag(std::string_view scoped);

// The pseudo-tag whose version moves when the database's cache policies change: a daemon
// whose catalog is older reloads it before caching again.
inline constexpr std::string_view kPolicyTag = "policy";

// How long a tag version outlives its last change. A fill older than kMaxFillAge is
// refused, so a version can never expire while a fill that read it is still in flight.
inline constexpr std::int64_t kVersionTtlMs = 3600 * 1000;
inline constexpr std::int64_t kMaxFillAgeMs = 600 * 1000;

struct Script {
  const char* name;
  std::string source;
  std::string sha1;  // hex, for EVALSHA
};
const Script& lookup_script();
const Script& fill_script();
const Script& invalidate_script();
// KEYS: a fill lease. ARGV: the token that took it. Gives it up if that token still holds it.
const Script& release_script();
// KEYS: a version, the generation. The version, created at the current generation when
// missing (as the lookup creates it).
const Script& version_script();

// KEYS: applied. ARGV: "<epoch> <pos>". Stores it unless the stored value is higher
// (epoch, then pos; compared as decimal numbers): a daemon that lags never moves it back.
const Script& applied_script();

// EVALSHA, falling back to EVAL when the server does not have the script yet (a restart, or
// SCRIPT FLUSH). All keys must share one slot; the first one routes the command.
void run_script(redis::Backend& backend, const Script& script, const std::vector<std::string>& keys,
                const std::vector<std::string>& args, redis::Backend::Callback done);

// Tags invalidated by this process (SHOW CACHE), by database.
std::uint64_t invalidations_of(std::string_view database);

// Invalidates one tag of one database: new version, tagged entries and the set removed.
// The reply is the number of entries removed, or an error.
void invalidate_tag(redis::Backend& backend, const Layout& layout, std::string_view tag,
                    redis::Backend::Callback done);

}  // namespace pgcohere::cache

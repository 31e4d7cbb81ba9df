// The console's view of the query cache: SHOW CACHE, SHOW CACHE RULES, CACHE DELETE and
// SET cache_bypass, answered from the cache service.
#include "cache/redis_layout.h"
#include "pooler/pooler.h"
#include "util/log.h"

namespace pgcohere::pooler {

void Pooler::fill_cache_snapshot(admin::Snapshot& snap) {
  if (!cache_) {
    snap.cache_error = "the query cache is not enabled ([cache] enabled = 1)";
    return;
  }
  for (const auto& db : cache_->report()) {
    admin::CacheRow row;
    row.database = db.database;
    const auto& c = db.counters;
    row.hits = c.hits;
    row.misses = c.misses;
    row.stores = c.stores;
    row.stale_refused = c.stale_refused;
    row.not_stored = c.not_stored;
    row.bypassed = c.bypassed;
    row.uncacheable = c.uncacheable;
    row.redis_errors = c.redis_errors;
    row.single_flight_hits = c.single_flight_hits;
    row.bytes_stored = c.bytes_stored;
    row.invalidations = cache::invalidations_of(db.database);
    row.evictions = cache_->evictions();
    row.health = cache_->bypassed()        ? "bypassed"
                 : !cache_->healthy()      ? "redis down"
                 : !db.catalog_loaded      ? "loading policies"
                                           : "ok";
    snap.cache.push_back(std::move(row));
  }
  for (const auto& [database, r] : cache_->rules()) {
    admin::CacheRuleRow row;
    row.database = database;
    row.table = r.nspname + "." + r.relname;
    row.relid = r.relid;
    row.ttl_ms = r.ttl_ms;
    for (const auto& col : r.by_columns) row.by += (row.by.empty() ? "" : ",") + col;
    snap.cache_rules.push_back(std::move(row));
  }
}

void Pooler::cache_delete(const std::string& what, const std::string& value, CountDone done) {
  if (!cache_) return done(0, "the query cache is not enabled ([cache] enabled = 1)");
  if (what == "pattern") return cache_->delete_pattern(value, std::move(done));
  if (what == "table") {
    // Every database that has a cache-enabled table of that name.
    auto left = std::make_shared<std::size_t>(0);
    auto total = std::make_shared<std::int64_t>(0);
    auto found = std::make_shared<bool>(false);
    auto dbs = cache_->report();
    *left = dbs.size();
    if (dbs.empty()) return done(0, "no databases");
    auto shared_done = std::make_shared<CountDone>(std::move(done));
    for (const auto& db : dbs) {
      cache_->delete_table(db.database, value, [left, total, found, shared_done, value](std::int64_t n, std::string err) {
        if (err.empty()) *found = true;
        *total += n;
        if (--*left == 0) {
          if (*found) (*shared_done)(*total, {});
          else (*shared_done)(0, "no cache-enabled table named " + value);
        }
      });
    }
    return;
  }
  // A key as SHOW or redis-cli shows it: <namespace>{<database>}:e:<hash>.
  const std::string& ns = config_.cache.key_namespace;
  auto open = value.find('{');
  auto close = value.find("}:e:");
  if (value.rfind(ns, 0) != 0 || open != ns.size() || close == std::string::npos)
    return done(0, "not a cache entry key (" + ns + "{<database>}:e:<hash>): " + value);
  cache_->delete_entry(value.substr(open + 1, close - open - 1), value.substr(close + 4), std::move(done));
}

void Pooler::set(const std::string& key, const std::string& value, Done done) {
  if (key != "cache_bypass")
    return done("SET " + key + " is not supported by pgcohered; edit the configuration file and RELOAD");
  if (!cache_) return done("the query cache is not enabled ([cache] enabled = 1)");
  std::string v = value;
  for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  bool on = v == "1" || v == "on" || v == "true" || v == "yes";
  if (!on && v != "0" && v != "off" && v != "false" && v != "no")
    return done("cache_bypass takes 1/on/true or 0/off/false, not '" + value + "'");
  cache_->set_console_bypass(on);
  PGC_LOG_INFO << "admin console: cache_bypass = " << (on ? 1 : 0);
  done("");
}

}  // namespace pgcohere::pooler

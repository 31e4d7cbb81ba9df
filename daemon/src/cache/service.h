// The query-result cache service: one per process. It decides whether a client's request
// may be answered from Redis (plan), looks it up, stores a captured reply when no tag moved
// (fill), runs identical misses once (single flight), and keeps the breaker, the bypass
// switches, each database's policy catalog and the counters of SHOW CACHE and /metrics.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "app/service.h"
#include "cache/analysis_memo.h"
#include "cache/breaker.h"
#include "cache/catalog.h"
#include "cache/key.h"
#include "cache/query_analysis.h"
#include "cache/request.h"
#include "config/config.h"
#include "metrics/registry.h"
#include "redis/backend.h"
#include "session/params.h"

namespace pgcohere::cache {

// What a client session contributes to a decision and to the key.
struct SessionContext {
  const std::string& database;  // the [databases] entry the client connected to
  const std::string& role;
  const session::ParamMap& params;  // tracked parameters (client_encoding, DateStyle, ...)
  bool bypass = false;              // the client's own switch (SET pgcohere.cache_bypass)
  std::string_view server_encoding = "UTF8";
};

// A request the cache may answer, with everything its lookup and fill need.
struct Plan {
  std::string key_hash;
  std::vector<std::string> tags;
  std::int64_t ttl_ms = 0;
};

// Counters of one database (SHOW CACHE, /metrics). Monotonic.
struct CacheCounters {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;          // lookups not answered from Redis (own_writes included)
  std::uint64_t stores = 0;
  std::uint64_t stale_refused = 0;   // fills refused: a tag moved while the query ran
  std::uint64_t not_stored = 0;      // fills not attempted: error, notice, too large, ...
  std::uint64_t own_writes = 0;      // ... because the client's own commit was not purged yet
  std::uint64_t bypassed = 0;        // cacheable requests sent to PostgreSQL by a switch
  std::uint64_t uncacheable = 0;     // requests the cache may not answer
  std::uint64_t redis_errors = 0;    // lookups/fills that failed or timed out
  std::uint64_t single_flight_waits = 0;
  std::uint64_t single_flight_hits = 0;  // served from the first miss's reply
  std::uint64_t bytes_stored = 0;
};

// Owned by a std::shared_ptr (start() refuses one that is not): what it starts holds
// weak_from_this() and does nothing once the service is gone.
class CacheService : public app::Service, public std::enable_shared_from_this<CacheService> {
 public:
  CacheService(boost::asio::io_context& io, const config::Config& config);
  ~CacheService() override;
  const char* name() const override { return "cache"; }
  void start() override;
  void stop() override;
  void reload(const config::Config& config) override;

  // ---- the client's query path ----
  // The cheap test every statement passes first, from its text alone: false when the
  // cache cannot answer it (counted as uncacheable), so plan() and its allocations are
  // spent only on statements that may name a cache-enabled table.
  bool may_answer(const std::string& database, std::string_view sql);
  // A plan when the request may be served from the cache now; nullopt otherwise (counted).
  std::optional<Plan> plan(const SessionContext& session, const Request& request);

  struct Lookup {
    // busy: a miss whose fill another lookup leads (it holds the entry's lease in Redis).
    enum class Kind { hit, miss, busy, skip } kind = Kind::skip;
    std::string reply;                  // hit: the stored reply, without ReadyForQuery
    std::vector<std::string> versions;  // miss: what the fill must find unchanged
    std::string lease;                  // miss: the token of the fill lease it took
  };
  // Redis lookup bounded by redis_timeout; skip when Redis is slow, down, the database's
  // policies changed under this daemon (its catalog is reloaded meanwhile), or the client's
  // own last commit (`published`, "<epoch> <pos>" or "") is not purged everywhere yet.
  // `count`: false for the repeated lookups of await_remote_fill().
  boost::asio::awaitable<Lookup> lookup(const std::string& database, const Plan& plan,
                                        const std::string& published, bool count = true);

  // Single flight, within this daemon: the first miss of a key leads (true); a later
  // identical miss waits for it, at most single_flight_wait, and gets its reply if the
  // leader stored one, or if it joined before the leader's query was sent to PostgreSQL
  // (dispatched()). `lease`: the lookup's (Lookup::lease); a miss that does not lead gives
  // it up at once.
  bool lead(const std::string& database, const Plan& plan, const std::string& lease);
  // Across daemons: a leader whose lookup was busy waits, at most single_flight_wait, for
  // the other daemon's fill by looking up again (backing off from 1 to 16 ms): a hit, a
  // miss that took the lease (the other fill gave up: this one leads now, after
  // adopt_lease()), or skip.
  boost::asio::awaitable<Lookup> await_remote_fill(const std::string& database, const Plan& plan,
                                                   const std::string& published);
  void adopt_lease(const std::string& database, const Plan& plan, const std::string& lease);
  // Ends a flight that will not fill (its leader got a hit elsewhere, or gave up), giving
  // its lease up: followers take `reply` if there is one, or go to PostgreSQL.
  void end_flight(const std::string& database, const Plan& plan, std::optional<std::string> reply);
  boost::asio::awaitable<std::optional<std::string>> follow(const std::string& database, const Plan& plan);
  // The leader's query is on its way to PostgreSQL: followers that join from now on get
  // its reply only if it is stored.
  void dispatched(const std::string& database, const Plan& plan);
  // The leader's result: stores `reply` unless a tag moved, then releases the followers.
  // An empty optional: nothing to store (no complete reply); followers go to PostgreSQL.
  void finish(const std::string& database, const Plan& plan, std::vector<std::string> versions,
              std::optional<std::string> reply, std::chrono::steady_clock::time_point looked_up);

  // The extension published a policy change of this database: read the policies again.
  void policy_changed(const std::string& database);

  // ---- switches and the console ----
  bool bypassed() const { return bypass_config_ || bypass_env_ || bypass_console_; }
  void set_console_bypass(bool on) { bypass_console_ = on; }
  bool healthy() const { return backend_ && backend_->ready() && !breaker_.open(); }
  struct DatabaseReport {
    std::string database;
    CacheCounters counters;
    bool catalog_loaded = false;
    std::size_t cached_tables = 0;
  };
  std::vector<DatabaseReport> report() const;
  // SHOW CACHE RULES: the cache-enabled tables each database's catalog knows.
  std::vector<std::pair<std::string, CatalogRow>> rules() const;
  // CACHE DELETE ...: reply is a count or an error message.
  using DeleteDone = std::function<void(std::int64_t removed, std::string error)>;
  void delete_entry(const std::string& database, const std::string& key_hash, DeleteDone done);
  void delete_table(const std::string& database, const std::string& table, DeleteDone done);
  void delete_pattern(const std::string& pattern, DeleteDone done);
  std::size_t max_entry_bytes() const { return static_cast<std::size_t>(settings_.max_entry_bytes); }
  // Redis INFO's evicted_keys and used_memory, refreshed in the background.
  std::uint64_t evictions() const { return evicted_keys_; }

 private:
  struct Database;
  struct Flight;
  Database* find(const std::string& database);
  boost::asio::awaitable<void> load_catalog(Database& db);
  void request_catalog(Database& db);
  void count_failure();
  void release_lease(const Database& db, const Plan& plan, const std::string& lease);
  void tick();
  void collect(metrics::Exposition& out) const;

  boost::asio::io_context& io_;
  config::CacheSettings settings_;
  std::shared_ptr<redis::Backend> backend_;  // redis::make_backend
  std::map<std::string, std::unique_ptr<Database>> databases_;
  Breaker breaker_;
  bool bypass_config_ = false;
  bool bypass_env_ = false;
  bool bypass_console_ = false;
  bool stopping_ = false;
  boost::asio::steady_timer tick_timer_;
  std::unordered_map<std::string, std::shared_ptr<Flight>> flights_;
  std::string lease_prefix_;  // random per process: lease tokens never repeat across daemons
  std::uint64_t leases_taken_ = 0;
  // Analyses by query text: a parse costs tens of microseconds, a lookup one.
  AnalysisMemo analyses_;
  std::uint64_t evicted_keys_ = 0;
  metrics::Histogram& hit_latency_ms_;
  metrics::CollectorId collector_ = 0;
};

// Parse's raw parameter types (count + OIDs) as a list.
std::vector<std::uint32_t> param_type_oids(std::string_view raw);

// PGCOHERE_CACHE_BYPASS (or CACHE_BYPASS) set to true/1/on/yes in the environment.
bool bypass_from_environment();

}  // namespace pgcohere::cache

// The query cache service (see service.h and docs/cache.md).
#include "cache/service.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <strings.h>

#include <cstdlib>
#include <random>
#include <stdexcept>
#include <nlohmann/json.hpp>

#include "cache/key.h"
#include "cache/redis_layout.h"
#include "invalidation/consumer.h"
#include "invalidation/pg_connection.h"
#include "redis/make_backend.h"
#include "util/log.h"

// g++ 12 misreads Asio 1.18's coroutine frame allocator (a known false positive).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace pgcohere::cache {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using Clock = std::chrono::steady_clock;

namespace {
std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(std::max<long long>(1, static_cast<long long>(seconds * 1000)));
}

// A safety net beside the policy version: catalogs are read again this often.
constexpr auto kCatalogRefresh = std::chrono::seconds(30);
constexpr auto kTick = std::chrono::milliseconds(250);

// Waits for the first of: a value handed to `complete` (registered by `arm`), or `limit`
// (nullopt). Later completions are dropped; completions are posted, so the coroutine resumes
// only after the initiation returned.
// g++ 12 destroys non-trivial temporaries of a co_await expression twice: callers pass a
// named `arm`, taken by reference and copied here, so the expression holds none.
template <typename T, typename Arm>
awaitable<std::optional<T>> first_or_timeout(asio::io_context& io, std::chrono::milliseconds limit,
                                             const Arm& arm) {
  return asio::async_initiate<decltype(use_awaitable), void(std::optional<T>)>(
      [&io, limit, arm](auto handler) mutable {
        using Handler = decltype(handler);
        struct State {
          Handler handler;
          asio::steady_timer timer;
          bool done = false;
        };
        auto st = std::make_shared<State>(State{std::move(handler), asio::steady_timer(io), false});
        auto complete = [st, &io](std::optional<T> v) {
          if (st->done) return;
          st->done = true;
          st->timer.cancel();
          asio::post(io, [h = std::move(st->handler), v = std::move(v)]() mutable { h(std::move(v)); });
        };
        st->timer.expires_after(limit);
        st->timer.async_wait([complete](boost::system::error_code ec) {
          if (!ec) complete(std::nullopt);
        });
        arm(complete);
      },
      use_awaitable);
}

// A Redis command with a deadline: nullopt when it did not answer in time.
template <typename Start>
awaitable<std::optional<redis::Reply>> with_deadline(asio::io_context& io, std::chrono::milliseconds limit,
                                                     const Start& start) {
  auto arm = [&start](auto complete) { start([complete](redis::Reply r) { complete(std::move(r)); }); };
  return first_or_timeout<redis::Reply>(io, limit, arm);
}

std::string flight_key(const std::string& database, const std::string& key_hash) {
  return database + "\n" + key_hash;
}

// Tracked names keep the spelling of the config (track_extra_parameters): compare without case.
std::string param_or(const session::ParamMap& p, std::string_view name, std::string fallback = {}) {
  for (const auto& [k, v] : p.entries())
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
  return fallback;
}
}  // namespace

std::vector<std::uint32_t> param_type_oids(std::string_view raw) {
  // Parse's parameter types: a count, then that many OIDs (network order).
  std::vector<std::uint32_t> out;
  if (raw.size() < 2) return out;
  auto b = reinterpret_cast<const unsigned char*>(raw.data());
  std::size_t n = (std::size_t(b[0]) << 8) | b[1];
  for (std::size_t i = 0; i < n && 2 + 4 * i + 4 <= raw.size(); ++i) {
    const unsigned char* p = b + 2 + 4 * i;
    out.push_back((std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | p[3]);
  }
  return out;
}

bool bypass_from_environment() {
  for (const char* name : {"PGCOHERE_CACHE_BYPASS", "CACHE_BYPASS"}) {
    const char* v = std::getenv(name);
    if (!v) continue;
    std::string s(v);
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (s == "1" || s == "true" || s == "on" || s == "yes") return true;
  }
  return false;
}

namespace {
// The policy reads go where the LISTEN connection goes, under their own name.
std::map<std::string, std::string> catalog_conn_params(const config::ConnEntry& db, const config::DaemonSettings& d) {
  auto params = invalidation::listen_conn_params(db.name, db.params, d);
  params["application_name"] = "pgcohered-cache";
  return params;
}
}  // namespace

struct CacheService::Database {
  Database(std::string n, std::map<std::string, std::string> params, const std::string& ns)
      : name(std::move(n)), conn_params(std::move(params)), layout(ns, name) {}
  std::string name;
  std::map<std::string, std::string> conn_params;
  Layout layout;
  std::shared_ptr<const Catalog> catalog;  // null until first loaded
  std::string policy_version;              // v:policy when the catalog was read
  bool loading = false;
  bool reload_wanted = false;
  Clock::time_point loaded_at{};
  CacheCounters counters;
};

// One leader's miss and the identical misses waiting for it. A follower that joined before
// the leader's query went to PostgreSQL may take that reply even when it was not stored:
// the server took its snapshot after the follower's request arrived, so the reply is as
// fresh as the follower's own query would have been.
struct CacheService::Flight {
  struct Follower {
    std::function<void(std::optional<std::string>)> complete;
    bool joined_before_dispatch = false;
  };
  std::vector<Follower> followers;
  bool dispatched = false;
  std::string lease;  // the token of the Redis fill lease the leader holds, if any
};

CacheService::CacheService(asio::io_context& io, const config::Config& config)
    : io_(io),
      settings_(config.cache),
      backend_(redis::make_backend(io, config.redis)),
      // Open after 3 failures in a row with nothing answered for 5 timeouts; probe twice a second.
      breaker_(3, 5 * ms(config.cache.redis_timeout), std::chrono::milliseconds(500)),
      bypass_config_(config.cache.bypass),
      bypass_env_(bypass_from_environment()),
      tick_timer_(io),
      lease_prefix_([] {
        std::random_device random;
        return std::to_string(random()) + "-" + std::to_string(random()) + ":";
      }()),
      hit_latency_ms_(metrics::registry().histogram(
          "cache_hit_latency_ms", "Redis lookup time of requests answered from the cache, milliseconds",
          metrics::round_buckets(0.01, 1000))) {
  for (const auto& db : config.databases) {
    if (db.name == "*") continue;
    auto params = catalog_conn_params(db, config.daemon);
    databases_.emplace(db.name, std::make_unique<Database>(db.name, std::move(params), settings_.key_namespace));
  }
  if (bypass_env_) {
    PGC_LOG_INFO << "cache: bypassed (PGCOHERE_CACHE_BYPASS in the environment)";
  }
  collector_ = metrics::registry().add_collector([this](metrics::Exposition& e) { collect(e); });
}

CacheService::~CacheService() {
  if (collector_) metrics::registry().remove_collector(collector_);
}

void CacheService::start() {
  // Its Redis replies, coroutines and pending fills hold weak_from_this().
  if (weak_from_this().expired())
    throw std::logic_error("CacheService must be owned by a std::shared_ptr (std::make_shared)");
  stopping_ = false;
  backend_->start();
  for (auto& [name, db] : databases_) request_catalog(*db);
  tick();
}

void CacheService::stop() {
  stopping_ = true;
  tick_timer_.cancel();
  backend_->stop();
  for (auto& [key, flight] : flights_)
    for (auto& f : flight->followers) f.complete(std::nullopt);
  flights_.clear();
}

void CacheService::reload(const config::Config& config) {
  // The switches and limits act at once; the namespace and Redis address need a restart
  // (entries under the old ones would be orphaned mid-flight).
  bypass_config_ = config.cache.bypass;
  settings_.default_ttl = config.cache.default_ttl;
  settings_.max_entry_bytes = config.cache.max_entry_bytes;
  settings_.redis_timeout = config.cache.redis_timeout;
  settings_.single_flight_wait = config.cache.single_flight_wait;
  settings_.require_hint = config.cache.require_hint;
  // A database moved (host, port, server_tls_*): its policies are read there from now on.
  for (const auto& entry : config.databases) {
    Database* db = entry.name == "*" ? nullptr : find(entry.name);
    if (!db) continue;
    auto params = catalog_conn_params(entry, config.daemon);
    if (params == db->conn_params) continue;
    db->conn_params = std::move(params);
    if (!stopping_) request_catalog(*db);
  }
}

CacheService::Database* CacheService::find(const std::string& database) {
  auto it = databases_.find(database);
  return it == databases_.end() ? nullptr : it->second.get();
}

bool CacheService::may_answer(const std::string& database, std::string_view sql) {
  Database* db = find(database);
  if (!db || stopping_) return false;
  if (!db->catalog || db->catalog->may_name_cached_table(sql)) return true;  // plan() loads a missing catalog
  ++db->counters.uncacheable;
  return false;
}

std::optional<Plan> CacheService::plan(const SessionContext& s, const Request& r) {
  Database* db = find(s.database);
  if (!db || stopping_) return std::nullopt;
  if (!db->catalog) {
    ++db->counters.uncacheable;
    request_catalog(*db);
    return std::nullopt;
  }
  // Most traffic names no cache-enabled table: a substring test spares it the parse.
  if (!db->catalog->may_name_cached_table(r.sql)) {
    ++db->counters.uncacheable;
    return std::nullopt;
  }
  auto analysis = analyses_.analyze(r.sql);
  if (!analysis->cacheable || analysis->hint == Hint::nocache ||
      (settings_.require_hint && analysis->hint != Hint::cache)) {
    ++db->counters.uncacheable;
    return std::nullopt;
  }
  std::string search_path = param_or(s.params, "search_path", "\"$user\", public");
  std::string client_encoding = param_or(s.params, "client_encoding", "UTF8");
  std::string scs = param_or(s.params, "standard_conforming_strings", "on");
  Params params;
  params.values = r.params;
  params.formats = r.param_formats;
  params.types = param_type_oids(r.param_types);
  Session session;
  session.search_path = search_path;
  session.role = s.role;
  session.client_encoding = client_encoding;
  session.server_encoding = s.server_encoding;
  session.standard_conforming_strings = scs == "on";
  auto default_ttl_ms = static_cast<std::int64_t>(settings_.default_ttl * 1000);
  auto resolution = resolve(*analysis, *db->catalog, session, params, default_ttl_ms);
  if (!resolution.cacheable) {
    ++db->counters.uncacheable;
    return std::nullopt;
  }
  if (bypassed() || s.bypass || breaker_.open()) {
    ++db->counters.bypassed;
    return std::nullopt;
  }
  std::string datestyle = param_or(s.params, "DateStyle"), timezone = param_or(s.params, "TimeZone"),
              intervalstyle = param_or(s.params, "IntervalStyle"),
              extra_float_digits = param_or(s.params, "extra_float_digits"),
              bytea_output = param_or(s.params, "bytea_output");
  KeyParts parts;
  parts.database = s.database;
  parts.role = s.role;
  parts.search_path = search_path;
  parts.client_encoding = client_encoding;
  parts.date_style = datestyle;
  parts.time_zone = timezone;
  parts.interval_style = intervalstyle;
  parts.extra_float_digits = extra_float_digits;
  parts.bytea_output = bytea_output;
  parts.standard_conforming_strings = scs;
  parts.query = r.sql;
  parts.batch_shape = r.shape;
  parts.param_types = params.types;
  parts.param_values = r.params;
  parts.param_formats = r.param_formats;
  parts.result_formats = r.result_formats;
  parts.protocol = r.protocol == Request::Protocol::simple ? Protocol::simple : Protocol::extended;
  Plan p;
  p.key_hash = cache_key(parts);
  p.tags = std::move(resolution.tags);
  p.ttl_ms = std::max<std::int64_t>(1, resolution.ttl_ms);
  return p;
}

void CacheService::count_failure() { breaker_.failed(Clock::now()); }

awaitable<CacheService::Lookup> CacheService::lookup(const std::string& database, const Plan& plan,
                                                    const std::string& published, bool count) {
  Lookup out;
  Database* db = find(database);
  if (!db || !backend_->ready()) {
    if (db) ++db->counters.redis_errors;
    co_return out;
  }
  auto started = Clock::now();
  std::vector<std::string> keys;
  keys.reserve(5 + plan.tags.size());
  keys.push_back(db->layout.entry(plan.key_hash));
  keys.push_back(db->layout.generation());
  keys.push_back(db->layout.applied());
  keys.push_back(db->layout.lease(plan.key_hash));
  keys.push_back(db->layout.version(kPolicyTag));
  for (const auto& t : plan.tags) keys.push_back(db->layout.version(t));
  std::string lease = lease_prefix_ + std::to_string(++leases_taken_);
  // The lease outlives single_flight_wait only by the fill itself: a leader that vanished
  // holds back the other daemons' identical misses no longer than they would wait anyway.
  auto lease_ms = std::max<std::int64_t>(1, ms(settings_.single_flight_wait).count());
  auto weak = weak_from_this();
  auto start = [this, &keys, &published, &lease, lease_ms](auto done) {
    run_script(*backend_, lookup_script(), keys,
               {std::to_string(kVersionTtlMs), published, lease, std::to_string(lease_ms)}, std::move(done));
  };
  auto limit = ms(settings_.redis_timeout);
  auto reply = co_await with_deadline(io_, limit, start);
  if (weak.expired()) co_return out;
  if (!reply || reply->is_error() || reply->elements.empty()) {
    ++db->counters.redis_errors;
    count_failure();
    if (reply && reply->is_error()) {
      PGC_LOG_DEBUG << "cache lookup failed: " << reply->str;
    }
    co_return out;
  }
  breaker_.succeeded(Clock::now());
  const auto& e = reply->elements;
  if (e[0].integer == 2) {
    // Read-your-writes: PostgreSQL answers until the purge is done. A miss all the same
    // (hit_ratio counts it), and counted apart.
    if (count) {
      ++db->counters.misses;
      ++db->counters.own_writes;
    }
    co_return out;
  }
  if (e[0].integer == 1 && e.size() == 2) {
    if (count) {
      ++db->counters.hits;
      hit_latency_ms_.observe(std::chrono::duration<double, std::milli>(Clock::now() - started).count());
    }
    out.kind = Lookup::Kind::hit;
    out.reply = std::move(reply->elements[1].str);
    co_return out;
  }
  if (e[0].integer == 3) {
    if (count) ++db->counters.misses;
    out.kind = Lookup::Kind::busy;
    co_return out;
  }
  if (e.size() != plan.tags.size() + 2) co_return out;
  if (e[1].str != db->policy_version) {
    // The policies changed since this daemon read them: read them again first.
    ++db->counters.bypassed;
    release_lease(*db, plan, lease);
    request_catalog(*db);
    co_return out;
  }
  if (count) ++db->counters.misses;
  out.kind = Lookup::Kind::miss;
  out.lease = std::move(lease);
  for (std::size_t i = 1; i < e.size(); ++i) out.versions.push_back(e[i].str);
  co_return out;
}

void CacheService::release_lease(const Database& db, const Plan& plan, const std::string& lease) {
  if (lease.empty() || !backend_->ready()) return;  // else it expires by itself
  run_script(*backend_, release_script(), {db.layout.lease(plan.key_hash)}, {lease}, [](redis::Reply) {});
}

bool CacheService::lead(const std::string& database, const Plan& plan, const std::string& lease) {
  auto [it, first] = flights_.try_emplace(flight_key(database, plan.key_hash), std::make_shared<Flight>());
  if (first) {
    it->second->lease = lease;
  } else if (Database* db = find(database)) {
    release_lease(*db, plan, lease);  // a flight of this daemon leads: it will fill
  }
  return first;
}

void CacheService::adopt_lease(const std::string& database, const Plan& plan, const std::string& lease) {
  auto it = flights_.find(flight_key(database, plan.key_hash));
  if (it != flights_.end()) it->second->lease = lease;
}

awaitable<CacheService::Lookup> CacheService::await_remote_fill(const std::string& database, const Plan& plan,
                                                               const std::string& published) {
  if (Database* db = find(database)) ++db->counters.single_flight_waits;
  auto weak = weak_from_this();
  auto deadline = Clock::now() + ms(settings_.single_flight_wait);
  std::chrono::milliseconds pause(1);
  asio::steady_timer timer(io_);
  for (;;) {
    if (Clock::now() + pause >= deadline) co_return Lookup{};
    timer.expires_after(pause);
    co_await timer.async_wait(asio::use_awaitable);
    if (weak.expired() || stopping_) co_return Lookup{};
    auto found = co_await lookup(database, plan, published, false);
    if (weak.expired()) co_return Lookup{};
    if (found.kind == Lookup::Kind::hit) {
      if (Database* db = find(database)) ++db->counters.single_flight_hits;
    }
    if (found.kind != Lookup::Kind::busy) co_return found;
    pause = std::min(pause * 2, std::chrono::milliseconds(16));
  }
}

void CacheService::end_flight(const std::string& database, const Plan& plan, std::optional<std::string> reply) {
  auto node = flights_.extract(flight_key(database, plan.key_hash));
  if (node.empty()) return;
  if (Database* db = find(database)) release_lease(*db, plan, node.mapped()->lease);
  for (auto& f : node.mapped()->followers) f.complete(reply);
}

awaitable<std::optional<std::string>> CacheService::follow(const std::string& database, const Plan& plan) {
  auto it = flights_.find(flight_key(database, plan.key_hash));
  if (it == flights_.end()) co_return std::nullopt;
  if (Database* db = find(database)) ++db->counters.single_flight_waits;
  Flight* flight = it->second.get();  // a plain pointer: see with_deadline on temporaries
  auto arm = [flight](auto complete) { flight->followers.push_back({complete, !flight->dispatched}); };
  auto limit = ms(settings_.single_flight_wait);
  auto result = co_await first_or_timeout<std::string>(io_, limit, arm);
  if (result) {
    if (Database* db = find(database)) ++db->counters.single_flight_hits;
  }
  co_return result;
}

void CacheService::dispatched(const std::string& database, const Plan& plan) {
  auto it = flights_.find(flight_key(database, plan.key_hash));
  if (it != flights_.end()) it->second->dispatched = true;
}

void CacheService::finish(const std::string& database, const Plan& plan, std::vector<std::string> versions,
                          std::optional<std::string> reply, Clock::time_point looked_up) {
  auto node = flights_.extract(flight_key(database, plan.key_hash));
  auto flight = node.empty() ? std::make_shared<Flight>() : node.mapped();
  auto shared_reply = reply ? std::make_shared<const std::string>(std::move(*reply)) : nullptr;
  // stored: every follower takes the reply; otherwise only those that joined before the
  // leader's query was sent (see Flight).
  auto release = [flight, shared_reply](bool stored) {
    for (auto& f : flight->followers) {
      bool take = shared_reply && (stored || f.joined_before_dispatch);
      f.complete(take ? std::optional<std::string>(*shared_reply) : std::nullopt);
    }
  };
  Database* db = find(database);
  bool too_old = Clock::now() - looked_up > std::chrono::milliseconds(kMaxFillAgeMs);
  if (!db || !shared_reply || too_old || versions.size() != plan.tags.size() + 1 || !backend_->ready()) {
    if (db) {
      ++db->counters.not_stored;
      release_lease(*db, plan, flight->lease);  // other daemons' identical misses go on now
    }
    release(false);
    return;
  }
  std::vector<std::string> keys;
  keys.reserve(3 + 2 * plan.tags.size());
  keys.push_back(db->layout.entry(plan.key_hash));
  keys.push_back(db->layout.version(kPolicyTag));
  for (const auto& t : plan.tags) keys.push_back(db->layout.version(t));
  for (const auto& t : plan.tags) keys.push_back(db->layout.members(t));
  keys.push_back(db->layout.lease(plan.key_hash));
  std::vector<std::string> args;
  args.reserve(4 + versions.size());
  args.push_back(std::to_string(plan.ttl_ms));
  args.push_back(*shared_reply);
  args.push_back(std::to_string(plan.tags.size()));
  for (auto& v : versions) args.push_back(std::move(v));
  args.push_back(flight->lease);
  std::size_t size = shared_reply->size();
  run_script(*backend_, fill_script(), keys, args,
             [this, db, size, release, weak = weak_from_this()](redis::Reply r) {
               auto self = weak.lock();
               if (!self) return release(false);
               if (r.is_error()) {
                 ++db->counters.redis_errors;
                 count_failure();
                 PGC_LOG_DEBUG << "cache fill failed: " << r.str;
                 return release(false);
               }
               if (r.integer != 1) {
                 ++db->counters.stale_refused;
                 return release(false);
               }
               ++db->counters.stores;
               db->counters.bytes_stored += size;
               release(true);
             });
}

void CacheService::policy_changed(const std::string& database) {
  if (Database* db = find(database)) request_catalog(*db);
}

void CacheService::request_catalog(Database& db) {
  if (db.loading) {
    db.reload_wanted = true;
    return;
  }
  db.loading = true;
  asio::co_spawn(io_, load_catalog(db), asio::detached);
}

awaitable<void> CacheService::load_catalog(Database& db) {
  auto weak = weak_from_this();
  do {
    db.reload_wanted = false;
    // The version first: a change after this read moves it again, and the next lookup
    // sees that.
    auto read_version = [this, &db](auto done) {
      run_script(*backend_, version_script(), {db.layout.version(kPolicyTag), db.layout.generation()},
                 {std::to_string(kVersionTtlMs)}, std::move(done));
    };
    std::chrono::milliseconds limit(5000);
    auto version = co_await with_deadline(io_, limit, read_version);
    if (weak.expired() || stopping_) co_return;
    if (!version || version->is_error()) {
      // Redis is not there yet: try again on the next tick.
      db.loading = false;
      co_return;
    }
    invalidation::PgConnection conn(io_);
    std::string err = co_await conn.connect(db.conn_params);
    if (weak.expired()) co_return;
    std::optional<std::vector<std::vector<std::string>>> rows;
    std::string sqlstate;
    if (err.empty())
      rows = co_await conn.query("SELECT coalesce(json_agg(c), '[]') FROM pgcohere.cache_catalog() c", &err,
                                 &sqlstate);
    if (weak.expired()) co_return;
    conn.close();
    std::vector<CatalogRow> entries;
    if (!rows || rows->empty() || (*rows)[0].empty()) {
      if (sqlstate != "3F000" && sqlstate != "42883") {
        PGC_LOG_WARN << "cache [" << db.name << "]: cannot read the cache policies: " << err;
        db.loading = false;
        db.loaded_at = Clock::now() - kCatalogRefresh + std::chrono::seconds(2);  // retry soon
        co_return;
      }
      // No pgcohere (or an older one) in this database: nothing is cacheable.
    } else {
      try {
        auto json = nlohmann::json::parse((*rows)[0][0]);
        for (const auto& j : json) {
          CatalogRow row;
          // json_agg renders an oid as a string, a bigint as a number.
          const auto& relid = j.at("relid");
          row.relid = relid.is_string() ? static_cast<std::uint32_t>(std::stoul(relid.get<std::string>()))
                                        : relid.get<std::uint32_t>();
          row.nspname = j.at("nspname").get<std::string>();
          row.relname = j.at("relname").get<std::string>();
          row.cached = j.at("cached").get<bool>();
          if (!j.at("ttl_ms").is_null()) row.ttl_ms = j.at("ttl_ms").get<std::int64_t>();
          if (!j.at("by_columns").is_null()) row.by_columns = j.at("by_columns").get<std::vector<std::string>>();
          if (!j.at("by_types").is_null()) row.by_types = j.at("by_types").get<std::vector<std::string>>();
          row.rls = j.at("rls").get<bool>();
          row.temp = j.at("temp").get<bool>();
          entries.push_back(std::move(row));
        }
      } catch (const std::exception& e) {
        PGC_LOG_WARN << "cache [" << db.name << "]: unreadable cache_catalog(): " << e.what();
        db.loading = false;
        db.loaded_at = Clock::now() - kCatalogRefresh + std::chrono::seconds(2);  // retry soon, not at once
        co_return;
      }
    }
    bool first = !db.catalog;
    std::size_t cached = 0;
    for (const auto& e : entries) cached += e.cached ? 1 : 0;
    auto built = build_catalog(std::move(entries));
    if (!built.ok()) {
      PGC_LOG_WARN << "cache [" << db.name << "]: cache_catalog() rows refused: " << built.error;
      db.loading = false;
      db.loaded_at = Clock::now() - kCatalogRefresh + std::chrono::seconds(2);
      co_return;
    }
    db.catalog = std::make_shared<const Catalog>(std::move(built.catalog));
    db.policy_version = version->type == redis::Reply::Type::string ? version->str : std::string();
    db.loaded_at = Clock::now();
    if (first || db.reload_wanted) {
      PGC_LOG_INFO << "cache [" << db.name << "]: " << cached << " cache-enabled table(s)";
    }
  } while (db.reload_wanted && !stopping_);
  db.loading = false;
}

void CacheService::tick() {
  if (stopping_) return;
  auto now = Clock::now();
  if (breaker_.probe_due(now)) {
    backend_->keyed({"PING", "cache"}, 1, [this, weak = weak_from_this()](redis::Reply r) {
      auto self = weak.lock();
      if (!self) return;
      if (!r.is_error()) {
        PGC_LOG_INFO << "cache: Redis answers again; the cache is back";
        breaker_.probe_answered();
      }
    });
  }
  for (auto& [name, db] : databases_)
    if (!db->loading && now - db->loaded_at > kCatalogRefresh) request_catalog(*db);
  static int ticks = 0;
  if (++ticks % 20 == 0 && backend_->ready()) {
    backend_->keyed({"INFO", "stats"}, 1, [this, weak = weak_from_this()](redis::Reply r) {
      auto self = weak.lock();
      if (!self || r.is_error()) return;
      auto pos = r.str.find("evicted_keys:");
      if (pos != std::string::npos) evicted_keys_ = std::strtoull(r.str.c_str() + pos + 13, nullptr, 10);
    });
  }
  tick_timer_.expires_after(kTick);
  tick_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) tick();
  });
}

std::vector<CacheService::DatabaseReport> CacheService::report() const {
  std::vector<DatabaseReport> out;
  for (const auto& [name, db] : databases_) {
    DatabaseReport r;
    r.database = name;
    r.counters = db->counters;
    r.catalog_loaded = db->catalog != nullptr;
    if (db->catalog)
      for (const auto& row : db->catalog->rows()) r.cached_tables += row.cached ? 1 : 0;
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<std::pair<std::string, CatalogRow>> CacheService::rules() const {
  std::vector<std::pair<std::string, CatalogRow>> out;
  for (const auto& [name, db] : databases_) {
    if (!db->catalog) continue;
    for (const auto& row : db->catalog->rows())
      if (row.cached) out.emplace_back(name, row);
  }
  return out;
}

void CacheService::delete_entry(const std::string& database, const std::string& key_hash, DeleteDone done) {
  Database* db = find(database);
  if (!db) return done(0, "no such database: " + database);
  backend_->keyed({"UNLINK", db->layout.entry(key_hash)}, 1, [done](redis::Reply r) {
    if (r.is_error()) return done(0, r.str);
    done(r.integer, {});
  });
}

void CacheService::delete_table(const std::string& database, const std::string& table, DeleteDone done) {
  Database* db = find(database);
  if (!db) return done(0, "no such database: " + database);
  if (!db->catalog) return done(0, "the cache policies of " + database + " are not loaded yet");
  // "schema.table" or a bare name: every cache-enabled table of that name.
  auto dot = table.find('.');
  std::string schema = dot == std::string::npos ? std::string() : table.substr(0, dot);
  std::string relname = dot == std::string::npos ? table : table.substr(dot + 1);
  std::vector<std::string> tags;
  for (const auto& row : db->catalog->rows()) {
    if (!row.cached || row.relname != relname || (!schema.empty() && row.nspname != schema)) continue;
    tags.push_back("tbl:" + std::to_string(row.relid));
    tags.push_back("all:" + std::to_string(row.relid));
  }
  if (tags.empty()) return done(0, "no cache-enabled table " + table + " in " + database);
  auto left = std::make_shared<std::size_t>(tags.size());
  auto removed = std::make_shared<std::int64_t>(0);
  auto error = std::make_shared<std::string>();
  for (const auto& tag : tags) {
    invalidate_tag(*backend_, db->layout, tag, [left, removed, error, done](redis::Reply r) {
      if (r.is_error())
        *error = r.str;
      else
        *removed += r.integer;
      if (--*left == 0) done(*removed, *error);
    });
  }
}

void CacheService::delete_pattern(const std::string& pattern, DeleteDone done) {
  // Entries only, and only under our namespace: a glob over entry keys. SCAN on every
  // shard, UNLINK what matches.
  struct Pass {
    std::string match;
    std::int64_t removed = 0;
    std::size_t shards_left = 0;
    std::string error;
    DeleteDone done;
  };
  auto pass = std::make_shared<Pass>();
  pass->match = settings_.key_namespace + "{*}:e:" + pattern;
  pass->done = std::move(done);
  auto shards = backend_->shards();
  pass->shards_left = shards.size();
  if (shards.empty()) return pass->done(0, "Redis is not connected");
  auto step = std::make_shared<std::function<void(std::string, std::string)>>();
  // The step names itself weakly: only a pending SCAN's callback owns it, so it (and `done`,
  // which may hold a console client) is freed when the last shard's pass ends. A strong
  // self-capture was a cycle that leaked both at every CACHE DELETE PATTERN.
  *step = [this, pass, weak = std::weak_ptr(step)](std::string shard, std::string cursor) {
    backend_->scan(shard, {"SCAN", cursor, "MATCH", pass->match, "COUNT", "1000"},
                   [this, pass, step = weak.lock(), shard](redis::Reply r) {
                     if (r.is_error() || r.elements.size() != 2) {
                       pass->error = r.is_error() ? r.str : "unexpected SCAN reply";
                       if (--pass->shards_left == 0) pass->done(pass->removed, pass->error);
                       return;
                     }
                     std::string next = r.elements[0].str;
                     std::vector<std::string> keys;
                     for (auto& k : r.elements[1].elements) keys.push_back(std::move(k.str));
                     pass->removed += static_cast<std::int64_t>(keys.size());
                     if (!keys.empty()) backend_->unlink(std::move(keys), true, [](redis::Reply) {});
                     if (next == "0") {
                       if (--pass->shards_left == 0) pass->done(pass->removed, pass->error);
                       return;
                     }
                     (*step)(shard, next);
                   });
  };
  for (const auto& shard : shards) (*step)(shard, "0");
}

void CacheService::collect(metrics::Exposition& e) const {
  for (const auto& [name, db] : databases_) {
    metrics::Labels l{{"database", name}};
    const auto& c = db->counters;
    e.counter("cache_hits_total", "Requests answered from the cache", l, static_cast<double>(c.hits));
    e.counter("cache_misses_total", "Cacheable requests not answered from Redis (PostgreSQL or an identical miss in flight answered them)", l,
              static_cast<double>(c.misses));
    e.counter("cache_stores_total", "Replies stored in the cache", l, static_cast<double>(c.stores));
    e.counter("cache_stale_refused_total", "Fills refused because a tag moved while their query ran", l,
              static_cast<double>(c.stale_refused));
    e.counter("cache_not_stored_total", "Replies not stored (an error, a notice, too large, ...)", l,
              static_cast<double>(c.not_stored));
    e.counter("cache_own_writes_pending_total",
              "Cacheable requests PostgreSQL answered because the client's own commit was not purged yet", l,
              static_cast<double>(c.own_writes));
    e.counter("cache_bypassed_total", "Cacheable requests sent to PostgreSQL by a bypass switch or the breaker",
              l, static_cast<double>(c.bypassed));
    e.counter("cache_uncacheable_total", "Requests the cache may not answer", l,
              static_cast<double>(c.uncacheable));
    e.counter("cache_redis_errors_total", "Cache operations that failed or outlasted redis_timeout", l,
              static_cast<double>(c.redis_errors));
    e.counter("cache_single_flight_waits_total", "Misses that waited for an identical miss in flight", l,
              static_cast<double>(c.single_flight_waits));
    e.counter("cache_single_flight_hits_total", "Misses answered by the reply of an identical miss in flight", l,
              static_cast<double>(c.single_flight_hits));
    e.counter("cache_bytes_stored_total", "Bytes of replies stored", l, static_cast<double>(c.bytes_stored));
  }
  e.gauge("cache_healthy", "1 while Redis answers the cache (breaker closed)", {}, healthy() ? 1 : 0);
  e.gauge("cache_bypass", "1 while a bypass switch (config, environment, console) is on", {}, bypassed() ? 1 : 0);
  e.counter("cache_redis_evicted_keys_total", "Redis INFO evicted_keys (an eviction is a miss)", {},
            static_cast<double>(evicted_keys_));
  e.counter("cache_breaker_opened_total", "Times the breaker opened", {},
            static_cast<double>(breaker_.times_opened()));
}

}  // namespace pgcohere::cache

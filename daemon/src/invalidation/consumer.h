// One database's invalidation stream: a direct libpq LISTEN connection (reconnected with
// backoff), leader election by advisory lock, payload verification, seq/epoch tracking and
// resync; verified work goes to the shared purger.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "contract/hmac.h"
#include "invalidation/applied_watermark.h"
#include "invalidation/conn_params.h"
#include "invalidation/journal.h"
#include "invalidation/pg_connection.h"
#include "invalidation/purger.h"
#include "invalidation/sequence_tracker.h"
#include "metrics/registry.h"

namespace pgcohere::invalidation {

struct ConsumerSettings {
  std::string channel = "pgcohere";
  std::string secret;                 // trimmed content of the secret file
  std::string cache_namespace = "pgcohere:";
  std::vector<std::string> resync_patterns;  // [invalidation] resync_patterns
  std::chrono::milliseconds gap_grace{500};
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{5000};
  std::chrono::milliseconds standby_poll{1000};  // how often a standby tries the leader lock
  std::chrono::milliseconds redelete_delay{0};   // 0: no delayed re-delete
  Journal* journal = nullptr;                    // crash-safe record of accepted purges
  // Where the leader writes each database's read-your-writes watermark
  // (cache::Layout::applied()); unset: not written.
  redis::Backend* applied_backend = nullptr;
  // A verified "c <oid>" entry: the query-cache policy of relation <oid> changed in
  // database `database` (the [databases] entry name); the query cache reloads
  // pgcohere.cache_catalog(). The tags tbl:<oid> and all:<oid> of the same change are
  // purged like any tag. Unset: ignored.
  std::function<void(const std::string& database, std::uint32_t relid)> on_cache_policy_change;
  // The database's key templates (rules and declared key families), read at every
  // resync, for the prefix index. Unset: not read.
  std::function<void(const std::string& database, const std::vector<std::string>& templates)> on_key_families;
};

// Owned by a std::shared_ptr: the LISTEN coroutine holds shared_from_this() while it runs
// (stop() ends it); purge completions and re-delete timers hold a weak_ptr.
class DatabaseConsumer : public std::enable_shared_from_this<DatabaseConsumer> {
 public:
  DatabaseConsumer(boost::asio::io_context& io, Purger& purger, const ConsumerSettings& settings,
                   std::string name, std::map<std::string, std::string> conn_params);
  DatabaseConsumer(const DatabaseConsumer&) = delete;
  DatabaseConsumer& operator=(const DatabaseConsumer&) = delete;

  void start();
  void stop();
  // Purge every rule's coarse pattern and the cache namespace as soon as possible (also
  // used when the purger had to drop work). `reason` labels the metric.
  void request_resync(const std::string& reason);
  // RELOAD changed how the database is reached (host, port, server_tls_*): the LISTEN
  // connection is closed at once and the next one, without backoff, uses `params`; its
  // connect resync covers whatever was committed in between, as after any reconnect.
  void retarget(std::map<std::string, std::string> params);
  const std::map<std::string, std::string>& conn_params() const { return params_; }
  const std::string& name() const { return name_; }
  bool is_leader() const { return leader_; }
  // Writes the read-your-writes watermark again (Redis is back: a write may have failed).
  void rewrite_applied() { publish_applied(true); }
  std::optional<AppliedWatermark::Applied> applied() const { return watermark_.applied(); }

 private:
  boost::asio::awaitable<void> run();
  boost::asio::awaitable<bool> session();
  boost::asio::awaitable<bool> resync(std::string reason);
  void handle(const Notification& n);
  // The secret's prepared HMAC key (settings_.secret can change on RELOAD).
  const contract::HmacSha256& signing_key();
  void submit(PurgeJob job, std::uint64_t commit_us, std::function<void()> after = {});
  void set_leader(bool leader);
  void schedule_redelete(PurgeJob job);
  // Sends the watermark to Redis when it moved (or `force`: a resync may have deleted the
  // key); one write in flight, the latest value follows when it returns.
  void publish_applied(bool force);

  boost::asio::io_context& io_;
  Purger& purger_;
  const ConsumerSettings& settings_;
  std::string name_;
  std::map<std::string, std::string> params_;
  PgConnection conn_;
  SequenceTracker tracker_;
  AppliedWatermark watermark_;
  std::optional<AppliedWatermark::Applied> applied_written_;
  bool applied_writing_ = false;
  bool applied_again_ = false;
  boost::asio::steady_timer backoff_timer_;
  std::string dbname_;         // current_database(): the signature is bound to it
  // Preparing the key (OpenSSL's digest lookup, three contexts) was a quarter of the
  // daemon's instructions per NOTIFY when done per payload.
  std::unique_ptr<contract::HmacSha256> key_;
  std::string key_secret_;  // the secret key_ was prepared from
  std::string resync_reason_;  // non-empty: a resync is due
  bool stopping_ = false;
  bool retargeted_ = false;  // the session ends because retarget() closed it
  bool leader_ = false;
  bool holding_purger_ = false;  // notifications of one read are being handled (handle())
  std::set<std::shared_ptr<boost::asio::steady_timer>> redelete_timers_;

  metrics::Counter& received_;
  metrics::Counter& applied_;
  metrics::Counter& forged_;
  metrics::Counter& malformed_;
  metrics::Counter& replayed_;
  metrics::Counter& gaps_;
  metrics::Gauge& leader_gauge_;
  metrics::Histogram& latency_;
  metrics::Histogram& receive_latency_;
};

// The advisory-lock key that elects one purging daemon per database and channel.
std::int64_t leader_lock_key(const std::string& channel);

}  // namespace pgcohere::invalidation

// The pooler service: listens for clients, owns one pool per (database, user), routes
// CancelRequests, applies reloads. Client and server connections live in
// client_conn.* and server_conn.*; the pure parts in session/ and pool/.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>

#include "admin/snapshot.h"
#include "app/service.h"
#include "auth/exchange.h"
#include "auth/userlist.h"
#include "cache/service.h"
#include "config/config.h"
#include "metrics/registry.h"
#include "net/buffer.h"
#include "pool/pool.h"
#include "pool/target.h"
#include "session/params.h"
#include "session/prepared.h"

namespace pgcohere::pooler {

class ClientConn;
class ServerConn;

enum class PoolMode { session, transaction, statement };
PoolMode parse_pool_mode(const std::string& s);
const char* to_string(PoolMode m);

// Counters of one pool, for SHOW STATS and /metrics (monotonic).
struct PoolStats {
  uint64_t xact_count = 0;
  uint64_t query_count = 0;
  uint64_t bytes_received = 0;  // from clients
  uint64_t bytes_sent = 0;      // to clients
  uint64_t xact_time_us = 0;
  uint64_t query_time_us = 0;
  uint64_t wait_time_us = 0;
  uint64_t server_connect_errors = 0;
  uint64_t wait_count = 0;
  uint64_t server_checks = 0;          // server_check_query runs
  uint64_t server_check_failures = 0;  // ... that closed the connection
};

struct PoolEntry {
  PoolEntry(std::string db, std::string user, pool::PoolLimits limits) : pool(std::move(db), std::move(user), limits) {}
  pool::Pool<ServerConn, ClientConn> pool;
  pool::Target target;
  std::string server_user;
  PoolMode mode = PoolMode::transaction;
  session::ParamMap server_defaults;  // the ParameterStatus set of the latest server login
  bool defaults_known = false;
  std::set<ServerConn*> servers;      // every connection of this pool, any state
  std::set<ClientConn*> clients;
  PoolStats stats;
  std::string last_connect_error;
  // What server logins use: from the [databases] entry's password, else from the auth_file
  // entry of the last client that logged in (for SCRAM secrets: its proven key).
  auth::ServerCredentials credentials;
  metrics::Histogram* queue_wait_ms = nullptr;  // time clients waited for a server connection
};

class Pooler : public app::Service, public admin::Backend {
 public:
  Pooler(boost::asio::io_context& io, const config::Config& config);
  ~Pooler() override;
  const char* name() const override { return "pooler"; }
  void start() override;
  void stop() override;
  void reload(const config::Config& config) override;

  boost::asio::io_context& io() { return io_; }
  const config::Config& config() const { return config_; }
  const config::DaemonSettings& settings() const { return config_.daemon; }
  // Read buffers of idle clients come back here (pkt_buf sized).
  net::BufferPool& client_buffers() { return client_buffers_; }
  const session::TrackedNames& tracked() const { return tracked_; }
  session::StatementRegistry& statements() { return statements_; }
  bool stopping() const { return stopping_; }
  // The query cache, when [cache] enabled = 1 (else nullptr).
  cache::CacheService* cache() const { return cache_; }
  void set_cache(cache::CacheService* cache) { cache_ = cache; }
  const auth::UserList* users() const { return users_.get(); }

  // The pool for a client's database and user, or nullptr with the client-facing reason.
  PoolEntry* find_pool(const std::string& database, const std::string& user, std::string& error);
  void launch_server(PoolEntry& entry);

  // Client registry: cancel keys and max_client_conn.
  bool admit_client();
  void add_client(ClientConn* c);
  void remove_client(ClientConn* c);
  void cancel(int32_t pid, int32_t key);
  size_t client_count() const { return clients_.size(); }
  // Every client connection, logged in or not (for shutdown).
  void track(ClientConn* c, bool alive) {
    if (alive) all_clients_.insert(c);
    else all_clients_.erase(c);
  }

  std::map<std::pair<std::string, std::string>, std::unique_ptr<PoolEntry>>& pools() { return pools_; }

  // admin::Backend (the console; see pooler_admin.cpp)
  admin::Snapshot snapshot(admin::Show what) override;
  void pause(const std::string& database, Done done) override;
  void resume(const std::string& database, Done done) override;
  void reload(Done done) override;
  void shutdown(const std::string& mode, Done done) override;
  void kill(const std::string& database, Done done) override;
  void kill_client(std::int64_t id, Done done) override;
  void cache_delete(const std::string& what, const std::string& value, CountDone done) override;
  void set(const std::string& key, const std::string& value, Done done) override;
  bool paused() const { return paused_all_; }

 private:
  void accept_next();
  void apply_limits(PoolEntry& e);
  void janitor();

  boost::asio::io_context& io_;
  config::Config config_;
  session::TrackedNames tracked_;
  session::StatementRegistry statements_;
  net::BufferPool client_buffers_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  boost::asio::steady_timer janitor_timer_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<PoolEntry>> pools_;
  std::unordered_map<uint64_t, ClientConn*> clients_;  // by cancel key
  std::set<ClientConn*> all_clients_;
  bool stopping_ = false;
  cache::CacheService* cache_ = nullptr;
  std::shared_ptr<auth::UserList> users_;
  void load_users();
  void check_pauses();
  void collect(metrics::Exposition& out);
  void fill_cache_snapshot(admin::Snapshot& snap);  // pooler/cache_admin.cpp
  metrics::CollectorId collector_id_ = 0;
  struct PendingPause {
    std::string database;
    Done done;
  };
  std::vector<PendingPause> pending_pauses_;
  bool paused_all_ = false;
  admin::StatsCounters totals(const std::string& database) const;
  std::map<std::string, admin::StatsCounters> stats_prev_;
  std::chrono::steady_clock::time_point stats_prev_at_ = std::chrono::steady_clock::now();
  std::map<std::string, admin::StatsCounters> stats_avg_;
};

}  // namespace pgcohere::pooler

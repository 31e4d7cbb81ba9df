// The pooler service: owns one pool per (database, user) and applies reloads. The
// listener (accept, max_client_conn, cancel keys) is listener.*, the janitor janitor.*,
// client and server connections client_conn.* and server_conn.*; the pure parts are in
// session/ and pool/.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include "net/tcp_options.h"
#include "admin/console_target.h"
#include "admin/snapshot.h"
#include "app/control.h"
#include "app/service.h"
#include "auth/exchange.h"
#include "auth/hba.h"
#include "auth/userlist.h"
#include "cache/service.h"
#include "config/config.h"
#include "metrics/registry.h"
#include "net/buffer.h"
#include "net/tls_context.h"
#include "pool/pool.h"
#include "pool/target.h"
#include "pooler/auth_lookup.h"
#include "pooler/janitor.h"
#include "pooler/listener.h"
#include "pooler/notify_hub.h"
#include "pooler/peers.h"
#include "pooler/pool_entry.h"
#include "pooler/stats.h"
#include "session/params.h"
#include "session/prepared.h"
#include "util/log_budget.h"

namespace pgcohere::pooler {

class ClientConn;
class ServerConn;

class Pooler : public app::Service, public admin::ConsoleTarget {
 public:
  // `control` answers the console's RELOAD and SHUTDOWN (the application).
  Pooler(boost::asio::io_context& io, const config::Config& config, app::Control& control);
  ~Pooler() override;
  const char* name() const override { return "pooler"; }
  void start() override;
  void stop() override;
  void reload(const config::Config& config) override;

  boost::asio::io_context& io() { return io_; }
  const config::Config& config() const { return config_; }
  const config::DaemonSettings& settings() const { return config_.daemon; }
  // tcp_keepalive, tcp_keepidle, ... for the TCP sockets to clients and servers.
  net::TcpOptions tcp_options() const {
    const auto& d = config_.daemon;
    return {d.tcp_keepalive, d.tcp_keepidle, d.tcp_keepintvl, d.tcp_keepcnt, d.tcp_user_timeout};
  }
  // Read buffers of idle clients come back here (pkt_buf sized).
  net::BufferPool& client_buffers() { return client_buffers_; }
  // Clients waiting for their next request with no coroutine (ClientConn::park).
  void count_parked(int delta) { parked_clients_ += delta; }
  const session::TrackedNames& tracked() const { return tracked_; }
  session::StatementRegistry& statements() { return statements_; }
  bool stopping() const { return stopping_; }
  // SHUTDOWN WAIT_FOR_CLIENTS (SIGINT): stop accepting at once, serve the clients already
  // connected until they leave (or shutdown_wait_timeout passes), then shut the daemon down.
  void drain();
  // SHUTDOWN WAIT_FOR_SERVERS (PgBouncer's safe shutdown): stop accepting at once; a client
  // that holds a server connection (inside a transaction, or a session in session pooling)
  // keeps it until it is released; no client gets one after that ("server shutting
  // down", and the client is closed, as are those queued for one). Once no server
  // connection is in use (or shutdown_wait_timeout passes) the daemon shuts down. Also
  // turns a WAIT_FOR_CLIENTS drain under way into this one.
  void drain_servers();
  bool draining() const { return draining_; }
  bool waiting_for_servers() const { return wait_for_servers_; }
  // The query cache, when [cache] enabled = 1 (else nullptr).
  cache::CacheService* cache() const { return cache_; }
  void set_cache(cache::CacheService* cache) { cache_ = cache; }
  const auth::UserList* users() const { return users_.get(); }
  // TLS with clients (client_tls_*) and with servers (server_tls_*), as of the last start
  // or reload whose TLS files loaded.
  const net::TlsSide& client_tls() const { return client_tls_; }
  const net::TlsSide& server_tls() const { return server_tls_; }
  // auth_type = hba: the rules of auth_hba_file (nullptr for other auth types).
  const auth::HbaRules* hba() const { return hba_.get(); }
  AuthLookup& auth_lookup() { return auth_lookup_; }
  // The failed-login log line's budget: a brute force must not flood the log.
  log::Budget& auth_failure_log() { return auth_failure_log_; }
  // How a client of `entry` who is not in auth_file is looked up (auth_user, auth_query,
  // auth_dbname of its [databases] entry, else the [pgcohered] ones); nullopt without
  // auth_user. Throws std::invalid_argument for an auth_dbname that is no [databases] entry.
  std::optional<AuthQuery> auth_query_for(const PoolEntry& entry) const;

  // The pool for a client's database and user, or nullptr with the client-facing reason.
  PoolEntry* find_pool(const std::string& database, const std::string& user, std::string& error);
  void launch_server(PoolEntry& entry);

  // Client registry (the listener's): max_client_conn and cancel keys.
  bool admit_client() { return client_admitted(listener_.all_clients().size(), config_.daemon.max_client_conn); }
  void add_client(ClientConn* c);
  void logged_in(ClientConn* c) { listener_.logged_in(c); }
  void remove_client(ClientConn* c);
  // A CancelRequest: for one of our clients, or sent on to the peer whose key it is.
  void cancel(int32_t pid, int32_t key);
  // peer_id as of the start (every key handed out carries it, so a reload does not change it).
  int peer_id() const { return peer_id_; }
  size_t client_count() const { return listener_.logged_in_count(); }
  // Every client connection, logged in or not (for shutdown and the janitor).
  void track(ClientConn* c, bool alive) { listener_.track(c, alive); }
  const AllClients& all_clients() const { return listener_.all_clients(); }
  const LoginClients& logins() const { return listener_.logins(); }

  // For the janitor: PAUSE answers once the paused pools are idle; the SHOW STATS
  // averages start a new stats_period when the last one is over.
  void check_pauses();
  StatsAverages& stats_averages() { return stats_averages_; }

  Pools& pools() { return pools_; }
  // The LISTEN connection of `entry`'s database (made on first use with that pool's login).
  NotifyHub& notify_hub(PoolEntry& entry);

  // admin::ConsoleTarget (the console; see pooler/admin.cpp)
  admin::Snapshot snapshot(admin::Show what) override;
  void pause(const std::string& database, Done done) override;
  void resume(const std::string& database, Done done) override;
  void reload(Done done) override;
  void shutdown(const std::string& mode, Done done) override;
  void kill(const std::string& database, Done done) override;
  void kill_client(std::int64_t id, Done done) override;
  void cache_delete(const std::string& what, const std::string& value, CountDone done) override;
  void set(const std::string& key, const std::string& value, Done done) override;
  void suspend(Done done) override;
  void disable(const std::string& database, Done done) override;
  void enable(const std::string& database, Done done) override;
  void reconnect(const std::string& database, Done done) override;
  void wait_close(const std::string& database, Done done) override;
  bool paused() const { return paused_all_; }
  // SUSPEND: clients' new traffic (and new logins) waits until RESUME.
  bool suspended() const { return suspended_; }
  boost::asio::awaitable<void> wait_until_resumed();
  // DISABLE db: new clients of that database are refused until ENABLE.
  bool disabled(const std::string& database) const { return disabled_.count(database) > 0; }

 private:

  boost::asio::io_context& io_;
  app::Control& control_;
  config::Config config_;
  session::TrackedNames tracked_;
  session::StatementRegistry statements_;
  net::BufferPool client_buffers_;
  std::int64_t parked_clients_ = 0;
  log::Budget auth_failure_log_{10};  // lines a second
  Listener listener_;
  Janitor janitor_;
  Peers peers_;
  int peer_id_ = 0;
  Pools pools_;
  std::map<std::string, std::unique_ptr<NotifyHub>> notify_hubs_;  // by database
  bool stopping_ = false;
  bool draining_ = false;
  bool wait_for_servers_ = false;  // the drain ends when no server connection is in use
  std::chrono::steady_clock::time_point drain_started_;
  boost::asio::steady_timer drain_timer_;
  void check_drained();
  std::size_t servers_in_use() const;  // clients linked to a server connection
  cache::CacheService* cache_ = nullptr;
  std::shared_ptr<auth::UserList> users_;
  std::shared_ptr<const auth::HbaRules> hba_;
  AuthLookup auth_lookup_{*this};
  void load_users();
  // Builds both TLS sides; at start a failure stops the daemon, at reload it keeps the
  // previous ones. Returns whether the server side's settings changed.
  bool load_tls(bool at_start);
  net::TlsSide client_tls_, server_tls_;
  std::string server_tls_settings_;
  void load_hba();
  void collect(metrics::Exposition& out);
  void fill_cache_snapshot(admin::Snapshot& snap);  // pooler/admin.cpp
  metrics::CollectorId collector_id_ = 0;
  struct PendingPause {
    std::string database;
    Done done;
  };
  std::vector<PendingPause> pending_pauses_;
  std::vector<PendingPause> pending_wait_closes_;  // WAIT_CLOSE: until no server needs closing
  void check_wait_closes();
  bool suspended_ = false;
  // Never expires: cancelled by RESUME, which wakes every client held by SUSPEND at once.
  boost::asio::steady_timer resumed_;
  std::set<std::string> disabled_;
  bool paused_all_ = false;
  StatsAverages stats_averages_;
};

}  // namespace pgcohere::pooler

// One pool (PgBouncer's objects.c): the server connections of one (database, server
// user), where they go, in which pool mode, the clients that use them, their counters,
// and the rules that admit a new server connection. The queueing itself is pool::Pool
// (pool/pool.h, no sockets and no clocks).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "auth/exchange.h"
#include "config/config.h"
#include "metrics/registry.h"
#include "pool/login_retry.h"
#include "pool/pool.h"
#include "pool/target.h"
#include "pooler/client_list.h"
#include "pooler/server_conn.h"
#include "pooler/stats.h"
#include "session/params.h"

namespace pgcohere::pooler {

class ClientConn;

enum class PoolMode { session, transaction, statement };
PoolMode parse_pool_mode(const std::string& s);
const char* to_string(PoolMode m);

// Pure rules of admission and limits (daemon/tests/pool_entry_test.cpp).
namespace admission {
// pool_size, min_pool_size, reserve_pool_size: the [databases] entry's, else [pgcohered]'s.
pool::PoolLimits limits_for(const pool::Target& t, const config::DaemonSettings& d);
PoolMode mode_for(const pool::Target& t, const config::DaemonSettings& d);
// max_db_connections of the entry, else the global one (0: no limit).
int max_db_connections(const pool::Target& t, const config::DaemonSettings& d);
// Whether one more server connection may be opened, given how many exist (any state) to
// the pool's database and for its user, over every pool; a limit of 0 or less is none.
bool may_open_server(int db_connections, int user_connections, int max_db, int max_user);
}  // namespace admission

// One pool's actions and the state they keep. Only these methods change it: the client
// and server connections call the actions, the janitor, the console and the Pooler the
// rest; readers (stats.cpp, the console's SHOW) get const views.
class PoolEntry {
 public:
  using Queue = pool::Pool<ServerConn, ClientConn>;

  // The histograms of the time clients waited for a server connection and of the time a
  // transaction held one.
  PoolEntry(std::string db, std::string server_user, pool::Target target, metrics::Histogram& queue_wait_ms,
            metrics::Histogram& xact_duration_ms);
  ~PoolEntry();  // in pool_entry.cpp, where ClientConn (its clients' registry) is complete
  PoolEntry(const PoolEntry&) = delete;
  PoolEntry& operator=(const PoolEntry&) = delete;

  // ---- set up and reload (the Pooler) ----
  // The pool's mode and limits from its target, else from the [pgcohered] settings.
  void configure(const config::DaemonSettings& d);
  void retarget(pool::Target t) { target_ = std::move(t); }
  // How the queue opens a server connection, whether it may, and how it checks one.
  void set_hooks(std::function<void()> launch, std::function<bool()> may_open,
                 std::function<bool(const ServerConn&)> check_due, std::function<void(std::shared_ptr<ServerConn>)> check);
  // Idle connections above the (new) pool size, taken out of the pool for closing.
  std::vector<std::shared_ptr<ServerConn>> take_surplus_idle();

  // ---- the client's actions ----
  // admit: a logged-in client joins (SHOW CLIENTS, the janitor's timeouts); leave undoes it.
  void admit(ClientConn* c);
  void leave(ClientConn* c);
  // A client that parks (no coroutine while it is quiet) and one woken by its next bytes:
  // the janitor visits only awake clients, so idle ones cost nothing per tick.
  void parked(ClientConn* c);
  void woke(ClientConn* c);
  // link: an idle server connection handed to a client now (counted as a wait of 0 ms),
  // or nullptr: the client then waits (wait()).
  std::shared_ptr<ServerConn> link();
  // wait: the client queues for the next connection; stop_waiting takes it out of the
  // queue (served, gone, or timed out); waited counts the time it spent there.
  void wait(ClientConn* c);
  void stop_waiting(ClientConn* c);
  void waited(std::chrono::microseconds how_long);
  // A client's proven login: server logins use its credentials unless the [databases]
  // entry has a password, and only for the pool's own server user.
  void remember_credentials(auth::ServerCredentials creds);
  // What this pool's server connections (and its LISTEN connection) log in with: the
  // [databases] password, else the credentials a client of the pool proved, else the
  // forced user's auth_file entry in `users`.
  auth::ServerCredentials server_credentials(const auth::UserList* users) const;
  void count_bytes_received(std::uint64_t n) { stats_.bytes_received += n; }
  void count_bytes_sent(std::uint64_t n) { stats_.bytes_sent += n; }

  // ---- the server connection's actions ----
  // attach / detach: a server connection of this pool exists (any state).
  void attach(ServerConn* s) { servers_.insert(s); }
  void detach(ServerConn* s) { servers_.erase(s); }
  // The login failed before the connection counted as connected (SHOW POOLS' last error);
  // until a login succeeds, clients that need a new connection are refused (fail fast).
  void connect_failed(const std::string& error, std::chrono::steady_clock::time_point now);
  // The first server login's ParameterStatus set: what clients of this pool are told.
  void learn_defaults(const session::ParamMap& params);
  // A client's parameters after its login: most clients of a pool log in with the same
  // ones, so each adopts the storage of the last login's equal map (session/params.h)
  // instead of keeping a copy of its own.
  void share_login_params(session::ParamMap& params) {
    if (!params.share_if_equal(last_login_params_)) last_login_params_ = params;
  }
  // connected / checked: a new or just checked connection is ready (may go straight to a waiter).
  void connected(std::shared_ptr<ServerConn> s);
  void checked(std::shared_ptr<ServerConn> s);
  // release: a clean connection back to the pool (the first waiter gets it, or it idles).
  void release(std::shared_ptr<ServerConn> s);
  // retire: a server connection ended in state `was`; the pool stops counting it and,
  // where waiters counted on it, fails them or opens another.
  void retire(ServerConn& s, ServerConn::State was, const std::string& why);
  void count_query() { stats_.query_count++; }
  void count_query_time(std::chrono::microseconds took) { stats_.query_time_us += static_cast<std::uint64_t>(took.count()); }
  void count_xact(std::chrono::microseconds held) {
    stats_.xact_count++;
    stats_.xact_time_us += static_cast<std::uint64_t>(held.count());
    xact_duration_ms_.observe(static_cast<double>(held.count()) / 1000.0);
  }
  void count_server_connect() { stats_.server_connects++; }
  void count_server_check() { stats_.server_checks++; }

  // ---- the janitor's and the console's actions ----
  // After a failed login, once server_login_retry has passed: waiters get a new attempt.
  void retry_login(std::chrono::steady_clock::time_point now, double login_retry);
  void ensure_min();
  void use_reserve();
  void pause();
  void resume();

  // ---- what readers see ----
  const Queue& queue() const { return queue_; }
  const pool::Target& target() const { return target_; }
  const std::string& server_user() const { return server_user_; }
  PoolMode mode() const { return mode_; }
  bool defaults_known() const { return defaults_known_; }
  const session::ParamMap& server_defaults() const { return server_defaults_; }
  const std::set<ServerConn*>& servers() const { return servers_; }
  const PoolClients& clients() const { return clients_; }
  const AwakeClients& awake_clients() const { return awake_; }
  const PoolStats& stats() const { return stats_; }
  const std::string& last_connect_error() const { return last_connect_error_; }
  const auth::ServerCredentials& credentials() const { return credentials_; }
  // Whether a new server login may be tried now (server_login_retry after a failure).
  bool may_try_login(std::chrono::steady_clock::time_point now, double login_retry) const {
    return login_retry_.may_try(now, login_retry);
  }
  // The error for a client that needs a server connection now, if the pool has none and
  // may not try a login yet: "server login failed: <the server's reason>".
  std::optional<std::string> refusal(std::chrono::steady_clock::time_point now, double login_retry) const;

 private:
  Queue queue_;
  pool::Target target_;
  std::string server_user_;
  PoolMode mode_ = PoolMode::transaction;
  session::ParamMap server_defaults_;  // the ParameterStatus set of the first server login
  session::ParamMap last_login_params_;
  bool defaults_known_ = false;
  std::set<ServerConn*> servers_;  // every connection of this pool, any state
  PoolClients clients_;
  AwakeClients awake_;
  PoolStats stats_;
  std::string last_connect_error_;
  pool::LoginRetry login_retry_;
  // What server logins use: from the [databases] entry's password, else from the auth_file
  // entry of the last client that logged in (for SCRAM secrets: its proven key).
  auth::ServerCredentials credentials_;
  metrics::Histogram& queue_wait_ms_;
  metrics::Histogram& xact_duration_ms_;  // server connection linked to released (transaction mode)
};

}  // namespace pgcohere::pooler

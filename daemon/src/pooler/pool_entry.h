// One pool (PgBouncer's objects.c): the server connections of one (database, server
// user), where they go, in which pool mode, the clients that use them, their counters,
// and the rules that admit a new server connection. The queueing itself is pool::Pool
// (pool/pool.h, no sockets and no clocks).
#pragma once

#include <memory>
#include <set>
#include <string>

#include "auth/exchange.h"
#include "config/config.h"
#include "metrics/registry.h"
#include "pool/pool.h"
#include "pool/target.h"
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

class PoolEntry {
 public:
  PoolEntry(std::string db, std::string user, pool::PoolLimits limits) : pool(std::move(db), std::move(user), limits) {}
  PoolEntry(const PoolEntry&) = delete;
  PoolEntry& operator=(const PoolEntry&) = delete;

  // The actions on a pool.
  // admit: a logged-in client joins (SHOW CLIENTS, the janitor's timeouts); leave undoes it.
  void admit(ClientConn* c) { clients.insert(c); }
  void leave(ClientConn* c) { clients.erase(c); }
  // link: an idle server connection handed to a client now (counted as a wait of 0 ms),
  // or nullptr: the client then waits in pool.wait().
  std::shared_ptr<ServerConn> link();
  // release: a clean connection back to the pool (the first waiter gets it, or it idles).
  void release(std::shared_ptr<ServerConn> s);
  // retire: a server connection ended in state `was`; the pool stops counting it and,
  // where waiters counted on it, fails them or opens another.
  void retire(ServerConn& s, ServerConn::State was, const std::string& why);

  // The state below is written by the client and server connections (client_conn.cpp,
  // server_conn.cpp) and read by stats.cpp and the console.
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
  metrics::Histogram* xact_duration_ms = nullptr;  // server connection linked to released (transaction mode)
};

}  // namespace pgcohere::pooler

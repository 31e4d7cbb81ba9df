// One pool (see pool_entry.h).
#include "pooler/pool_entry.h"

#include "pooler/client_conn.h"
#include "util/log.h"

namespace pgcohere::pooler {

PoolMode parse_pool_mode(const std::string& s) {
  if (s == "session") return PoolMode::session;
  if (s == "statement") return PoolMode::statement;
  return PoolMode::transaction;
}

const char* to_string(PoolMode m) {
  switch (m) {
    case PoolMode::session: return "session";
    case PoolMode::transaction: return "transaction";
    case PoolMode::statement: return "statement";
  }
  return "transaction";
}

namespace admission {

pool::PoolLimits limits_for(const pool::Target& t, const config::DaemonSettings& d) {
  pool::PoolLimits l;
  l.pool_size = t.pool_size >= 0 ? t.pool_size : d.default_pool_size;
  l.min_pool_size = t.min_pool_size >= 0 ? t.min_pool_size : d.min_pool_size;
  l.reserve_pool_size = t.reserve_pool >= 0 ? t.reserve_pool : d.reserve_pool_size;
  return l;
}

PoolMode mode_for(const pool::Target& t, const config::DaemonSettings& d) {
  return parse_pool_mode(t.pool_mode.empty() ? d.pool_mode : t.pool_mode);
}

int max_db_connections(const pool::Target& t, const config::DaemonSettings& d) {
  return t.max_db_connections >= 0 ? t.max_db_connections : d.max_db_connections;
}

bool may_open_server(int db_connections, int user_connections, int max_db, int max_user) {
  return (max_db <= 0 || db_connections < max_db) && (max_user <= 0 || user_connections < max_user);
}

}  // namespace admission

std::shared_ptr<ServerConn> PoolEntry::link() {
  auto s = pool.try_acquire();
  if (s) queue_wait_ms->observe(0);
  return s;
}

void PoolEntry::release(std::shared_ptr<ServerConn> s) { pool.release(std::move(s)); }

void PoolEntry::retire(ServerConn& s, ServerConn::State was, const std::string& why) {
  switch (was) {
    case ServerConn::State::connecting:
      pool.connect_failed("server login failed: " + why);
      break;
    case ServerConn::State::idle:
      pool.remove_idle(&s);
      break;
    case ServerConn::State::active:
    case ServerConn::State::resetting:
    case ServerConn::State::being_canceled:
      pool.discard_active();
      break;
    case ServerConn::State::testing:
      stats.server_check_failures++;
      PGC_LOG_WARN << "server " << s.backend_pid() << " failed server_check_query (" << why << "): closing it";
      pool.check_failed();
      break;
    case ServerConn::State::closed:
      break;
  }
}

}  // namespace pgcohere::pooler

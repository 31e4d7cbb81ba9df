// [databases] entries to connection targets (see target.h).
#include "pool/target.h"

#include <stdexcept>

namespace pgcohere::pool {
namespace {
int to_int(const std::string& key, const std::string& v) {
  try {
    size_t used = 0;
    int n = std::stoi(v, &used);
    if (used == v.size()) return n;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument(key + ": expected an integer, got '" + v + "'");
}
}  // namespace

Target resolve_target(const config::ConnEntry& entry, const std::string& client_database,
                      const std::string& unix_socket_dir) {
  Target t;
  t.name = client_database;
  t.dbname = client_database;
  for (const auto& [k, v] : entry.params) {
    if (k == "host") {
      t.host = v.substr(0, v.find(','));  // several hosts: the first one
    } else if (k == "port") {
      t.port = to_int(k, v);
    } else if (k == "dbname") {
      t.dbname = v;
    } else if (k == "user") {
      t.user = v;
    } else if (k == "password") {
      t.password = v;
    } else if (k == "pool_size") {
      t.pool_size = to_int(k, v);
    } else if (k == "min_pool_size") {
      t.min_pool_size = to_int(k, v);
    } else if (k == "reserve_pool" || k == "reserve_pool_size") {
      t.reserve_pool = to_int(k, v);
    } else if (k == "max_db_connections") {
      t.max_db_connections = to_int(k, v);
    } else if (k == "pool_mode") {
      t.pool_mode = v;
    } else if (k == "auth_user") {
      t.auth_user = v;
    } else if (k == "auth_query") {
      t.auth_query = v;
    } else if (k == "auth_dbname") {
      t.auth_dbname = v;
    } else if (k == "client_encoding" || k == "datestyle" || k == "timezone" || k == "application_name") {
      t.startup[k] = v;
    }
  }
  if (t.host.empty()) t.host = unix_socket_dir;
  return t;
}

std::string describe(const Target& t) {
  if (!t.host.empty() && t.host[0] == '/') return t.host + "/.s.PGSQL." + std::to_string(t.port);
  return t.host + ":" + std::to_string(t.port);
}

}  // namespace pgcohere::pool

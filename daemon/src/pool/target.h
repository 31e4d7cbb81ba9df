// Where a pool's server connections go: a [databases] entry resolved for one client
// database name (libpq-style keys: host, port, dbname, user, password, pool_size, ...).
#pragma once

#include <map>
#include <string>

#include "config/config.h"

namespace pgcohere::pool {

struct Target {
  std::string name;        // the database name clients use
  std::string host;        // "" or a path starting with '/': Unix socket directory
  int port = 5432;
  std::string dbname;      // the database on the server
  std::string user;        // forced server user ("" = the client's user)
  std::string password;    // for the server login; never logged
  int pool_size = -1;      // -1: default_pool_size
  int min_pool_size = -1;
  int reserve_pool = -1;
  int max_db_connections = -1;
  std::string pool_mode;   // "": the [pgcohered] pool_mode
  // auth_query overrides of this entry ("": the [pgcohered] ones).
  std::string auth_user, auth_query, auth_dbname;
  std::map<std::string, std::string> startup;  // extra startup parameters for the server
};

// An entry without host goes to `unix_socket_dir` ([pgcohered]), as in PgBouncer; the
// loader refuses such an entry when that is empty or abstract. Throws std::invalid_argument
// with the key at fault.
Target resolve_target(const config::ConnEntry& entry, const std::string& client_database,
                      const std::string& unix_socket_dir);

// "host:port" or the socket path, for logs and SHOW (no password).
std::string describe(const Target& t);

}  // namespace pgcohere::pool

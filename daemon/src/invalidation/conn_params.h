// libpq parameters of the daemon's own PostgreSQL connections (the LISTEN connection of
// each database, the query cache's policy reads): the [databases] entry, reached the way
// the pool's server connections reach it (unix_socket_dir, server_tls_*).
#pragma once

#include <map>
#include <string>

#include "config/config.h"

namespace pgcohere::invalidation {

// Server-side settings of the LISTEN session (libpq `options`): the backend detects a dead
// daemon within about 25 s and releases the leader lock with its session.
inline constexpr const char* kListenServerOptions =
    "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3 "
    "-c tcp_user_timeout=30000";

// server_tls_* in libpq's words: sslmode, sslrootcert (server_tls_ca_file), sslcert,
// sslkey, and ssl_min/max_protocol_version (the lowest and highest version
// server_tls_protocols allows; libpq takes a range, not a list). Ciphers have no libpq
// parameter: libpq uses OpenSSL's defaults.
std::map<std::string, std::string> server_tls_libpq_params(const config::DaemonSettings& daemon);

// libpq parameters for the LISTEN connection from a [databases] entry: pooler-only keys
// dropped, dbname defaulted to the entry name, host defaulted to unix_socket_dir (as
// PgBouncer's server connections do), server_tls_* applied, keepalives and tcp_user_timeout
// on both the client and the server side, the entry's `options` kept after ours.
std::map<std::string, std::string> listen_conn_params(const std::string& entry_name,
                                                      const std::map<std::string, std::string>& entry,
                                                      const config::DaemonSettings& daemon);

}  // namespace pgcohere::invalidation

// The daemon's own libpq connections (see conn_params.h).
#include "invalidation/conn_params.h"

#include <set>

#include "config/tls_protocols.h"

namespace pgcohere::invalidation {

std::map<std::string, std::string> server_tls_libpq_params(const config::DaemonSettings& d) {
  std::map<std::string, std::string> out;
  out["sslmode"] = d.server_tls_sslmode;
  if (!d.server_tls_ca_file.empty()) out["sslrootcert"] = d.server_tls_ca_file;
  if (!d.server_tls_cert_file.empty()) out["sslcert"] = d.server_tls_cert_file;
  if (!d.server_tls_key_file.empty()) out["sslkey"] = d.server_tls_key_file;
  // Validated at load (config.cpp); a bad value there never reaches this point.
  config::TlsProtocols p;
  try {
    p = config::parse_tls_protocols(d.server_tls_protocols);
  } catch (const std::exception&) {
    return out;
  }
  const bool on[] = {p.tls1_0, p.tls1_1, p.tls1_2, p.tls1_3};
  const char* names[] = {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"};
  int lo = -1, hi = -1;
  for (int i = 0; i < 4; ++i) {
    if (!on[i]) continue;
    if (lo < 0) lo = i;
    hi = i;
  }
  out["ssl_min_protocol_version"] = names[lo];
  out["ssl_max_protocol_version"] = names[hi];
  return out;
}

std::map<std::string, std::string> listen_conn_params(const std::string& entry_name,
                                                      const std::map<std::string, std::string>& entry,
                                                      const config::DaemonSettings& daemon) {
  static const std::set<std::string> libpq_keys = {
      "host", "hostaddr", "port", "dbname", "user", "password", "sslmode", "sslrootcert",
      "sslcert", "sslkey", "connect_timeout", "target_session_attrs", "options"};
  // server_tls_* first: a libpq key of the entry itself wins (PgBouncer's [databases] keys,
  // which the loader enforces, include none of them today).
  std::map<std::string, std::string> out = server_tls_libpq_params(daemon);
  for (const auto& [k, v] : entry)
    if (libpq_keys.count(k)) out[k] = v;
  if (!out.count("dbname")) out["dbname"] = entry_name;
  // No host: PgBouncer connects to unix_socket_dir (config.cpp refuses an entry without
  // host when that is empty or abstract), not to libpq's compiled-in directory.
  if (out["host"].empty()) out["host"] = daemon.unix_socket_dir;
  if (!out.count("connect_timeout")) out["connect_timeout"] = "10";
  // Client side: notice a dead server or network within about 25 s.
  out["keepalives"] = "1";
  out["keepalives_idle"] = "10";
  out["keepalives_interval"] = "5";
  out["keepalives_count"] = "3";
  out["tcp_user_timeout"] = "30000";
  // Server side: the session holds the leader's advisory lock, so a backend whose daemon
  // vanished (host gone, network cut) must end soon, not after the kernel's 2 hours of
  // keepalive silence; until then no other daemon can take over. The entry's own options
  // come last, so an explicit setting there wins.
  std::string server = kListenServerOptions;
  auto it = out.find("options");
  out["options"] = it == out.end() || it->second.empty() ? server : server + " " + it->second;
  out["application_name"] = "pgcohered-listen";
  return out;
}

}  // namespace pgcohere::invalidation

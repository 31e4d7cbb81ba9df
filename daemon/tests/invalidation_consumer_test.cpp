// The LISTEN connection's libpq parameters: keepalives on both sides, so that a session whose
// daemon vanished releases the leader's advisory lock within seconds, not hours.
#include "invalidation/consumer.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <map>
#include <set>
#include <sstream>
#include <string>

using pgcohere::invalidation::kListenServerOptions;
using pgcohere::invalidation::listen_conn_params;
using pgcohere::invalidation::server_tls_libpq_params;

namespace {
// "-c a=1 -c b=2" -> {a: 1, b: 2}; later settings win, as in the server.
std::map<std::string, std::string> server_settings(const std::string& options) {
  std::map<std::string, std::string> out;
  std::istringstream in(options);
  std::string word;
  while (in >> word) {
    if (word != "-c" || !(in >> word)) {
      ADD_FAILURE() << "unexpected word in options: " << word;
      break;
    }
    auto eq = word.find('=');
    out[word.substr(0, eq)] = eq == std::string::npos ? "" : word.substr(eq + 1);
  }
  return out;
}

const pgcohere::config::DaemonSettings kDaemon;
const std::map<std::string, std::string> kEntry = {
    {"host", "10.0.0.5"}, {"port", "5433"}, {"user", "app"}, {"pool_size", "20"}, {"pool_mode", "transaction"}};
}  // namespace

TEST(ListenConnParams, ServerSideKeepalivesReachTheServer) {
  auto p = listen_conn_params("appdb", kEntry, kDaemon);
  ASSERT_TRUE(p.count("options"));
  EXPECT_EQ(p["options"], kListenServerOptions);
  auto s = server_settings(p["options"]);
  EXPECT_EQ(s["tcp_keepalives_idle"], "10");
  EXPECT_EQ(s["tcp_keepalives_interval"], "5");
  EXPECT_EQ(s["tcp_keepalives_count"], "3");
  EXPECT_EQ(s["tcp_user_timeout"], "30000");
}

TEST(ListenConnParams, ClientSideKeepalivesAndUserTimeout) {
  auto p = listen_conn_params("appdb", kEntry, kDaemon);
  EXPECT_EQ(p["keepalives"], "1");
  EXPECT_EQ(p["keepalives_idle"], "10");
  EXPECT_EQ(p["keepalives_interval"], "5");
  EXPECT_EQ(p["keepalives_count"], "3");
  EXPECT_EQ(p["tcp_user_timeout"], "30000");
  EXPECT_EQ(p["application_name"], "pgcohered-listen");
  EXPECT_EQ(p["dbname"], "appdb");
  EXPECT_EQ(p["host"], "10.0.0.5");
  EXPECT_EQ(p["port"], "5433");
  EXPECT_EQ(p["user"], "app");
  EXPECT_FALSE(p.count("pool_size"));
  EXPECT_FALSE(p.count("pool_mode"));
}

TEST(ListenConnParams, EntryOptionsAreKeptAfterOurs) {
  auto entry = kEntry;
  entry["options"] = "-c search_path=app -c tcp_keepalives_idle=60";
  auto p = listen_conn_params("appdb", entry, kDaemon);
  EXPECT_EQ(p["options"], std::string(kListenServerOptions) + " -c search_path=app -c tcp_keepalives_idle=60");
  auto s = server_settings(p["options"]);
  EXPECT_EQ(s["search_path"], "app");
  EXPECT_EQ(s["tcp_keepalives_idle"], "60");  // the operator's explicit choice wins
  EXPECT_EQ(s["tcp_user_timeout"], "30000");
}

TEST(ListenConnParams, EveryKeyIsALibpqKeyword) {
  // PQconnectStartParams refuses the whole connection over one unknown keyword.
  std::set<std::string> known;
  PQconninfoOption* defaults = PQconndefaults();
  ASSERT_NE(defaults, nullptr);
  for (auto* o = defaults; o->keyword; ++o) known.insert(o->keyword);
  PQconninfoFree(defaults);
  auto entry = kEntry;
  entry["options"] = "-c search_path=app";
  for (const auto& [k, v] : listen_conn_params("appdb", entry, kDaemon)) EXPECT_TRUE(known.count(k)) << k;
}

TEST(ListenConnParams, ServerTlsSettingsBecomeLibpqOnes) {
  pgcohere::config::DaemonSettings d;
  d.server_tls_sslmode = "verify-full";
  d.server_tls_ca_file = "/etc/ssl/pg-ca.crt";
  d.server_tls_cert_file = "/etc/ssl/pooler.crt";
  d.server_tls_key_file = "/etc/ssl/pooler.key";
  auto p = listen_conn_params("appdb", kEntry, d);
  EXPECT_EQ(p["sslmode"], "verify-full");
  EXPECT_EQ(p["sslrootcert"], "/etc/ssl/pg-ca.crt");
  EXPECT_EQ(p["sslcert"], "/etc/ssl/pooler.crt");
  EXPECT_EQ(p["sslkey"], "/etc/ssl/pooler.key");
  EXPECT_EQ(p["ssl_min_protocol_version"], "TLSv1.2");  // server_tls_protocols = secure
  EXPECT_EQ(p["ssl_max_protocol_version"], "TLSv1.3");
}

TEST(ListenConnParams, TheDefaultsAreLibpqsPreferWithoutFiles) {
  auto p = listen_conn_params("appdb", kEntry, kDaemon);
  EXPECT_EQ(p["sslmode"], "prefer");  // PgBouncer's default is libpq's
  EXPECT_FALSE(p.count("sslrootcert"));
  EXPECT_FALSE(p.count("sslcert"));
  EXPECT_FALSE(p.count("sslkey"));
}

TEST(ListenConnParams, TlsProtocolListsBecomeTheirLowestAndHighestVersion) {
  pgcohere::config::DaemonSettings d;
  d.server_tls_protocols = "tlsv1.3";
  auto p = server_tls_libpq_params(d);
  EXPECT_EQ(p["ssl_min_protocol_version"], "TLSv1.3");
  EXPECT_EQ(p["ssl_max_protocol_version"], "TLSv1.3");
  d.server_tls_protocols = "all";
  p = server_tls_libpq_params(d);
  EXPECT_EQ(p["ssl_min_protocol_version"], "TLSv1");
  EXPECT_EQ(p["ssl_max_protocol_version"], "TLSv1.3");
}

TEST(ListenConnParams, AnEntryWithoutHostGoesToUnixSocketDirAsInPgBouncer) {
  pgcohere::config::DaemonSettings d;
  d.unix_socket_dir = "/run/postgresql";
  auto p = listen_conn_params("appdb", {{"port", "5433"}}, d);
  EXPECT_EQ(p["host"], "/run/postgresql");
  EXPECT_EQ(p["port"], "5433");
}

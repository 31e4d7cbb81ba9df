// The ini loader: PgBouncer syntax accepted unchanged, mistakes refused with file:line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "config/config.h"
#include "config/tls_protocols.h"

using pgcohere::config::ConfigError;
using pgcohere::config::parse_config;
using pgcohere::config::parse_conn_params;
using pgcohere::config::parse_tls_protocols;
using pgcohere::config::requires_restart;
using pgcohere::config::TlsProtocols;

namespace {

std::string error_of(const std::string& text) {
  try {
    parse_config(text, "test.ini");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Config, TcpKeepaliveSettingsAreReadAndBounded) {
  auto c = parse_config("[pgbouncer]\nauth_type = trust\ntcp_keepidle = 30\ntcp_keepintvl = 5\ntcp_keepcnt = 3\n"
                        "tcp_user_timeout = 20000\n", "k.ini");
  EXPECT_EQ(c.daemon.tcp_keepidle, 30);
  EXPECT_EQ(c.daemon.tcp_keepintvl, 5);
  EXPECT_EQ(c.daemon.tcp_keepcnt, 3);
  EXPECT_EQ(c.daemon.tcp_user_timeout, 20000);
  EXPECT_TRUE(c.ignored_keys.empty());
  EXPECT_THROW(parse_config("[pgbouncer]\nauth_type = trust\ntcp_keepcnt = 1000\n", "k.ini"), std::exception);
}

TEST(Config, ReadsPgBouncerSectionsAndKeys) {
  auto c = parse_config(R"(
; comment
[databases]
appdb = host=127.0.0.1 port=5432 dbname=app user=app password='it''s secret'
* = host=10.0.0.1

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6433
pool_mode = transaction
default_pool_size = 25
query_wait_timeout = 1.5
server_idle_timeout = 10min
admin_users = admin, ops
auth_type = trust
tcp_defer_accept = 5

[redis]
url = redis://127.0.0.1:6379/0
[invalidation]
secret_file = /etc/pgcohere/secret
)",
                        "test.ini");
  ASSERT_EQ(c.databases.size(), 2u);
  EXPECT_EQ(c.databases[0].name, "appdb");
  EXPECT_EQ(c.databases[0].get("password"), "it's secret");
  EXPECT_EQ(c.databases[0].origin, "test.ini:4");
  EXPECT_EQ(c.find_database("other")->name, "*");
  EXPECT_EQ(c.daemon.listen_addr, "0.0.0.0");
  EXPECT_EQ(c.daemon.listen_port, 6433);
  EXPECT_EQ(c.daemon.pool_mode, "transaction");
  EXPECT_EQ(c.daemon.default_pool_size, 25);
  EXPECT_DOUBLE_EQ(c.daemon.query_wait_timeout, 1.5);
  EXPECT_DOUBLE_EQ(c.daemon.server_idle_timeout, 600);
  EXPECT_EQ(c.daemon.admin_users, (std::vector<std::string>{"admin", "ops"}));
  EXPECT_EQ(c.redis.url, "redis://127.0.0.1:6379/0");
  EXPECT_EQ(c.invalidation.secret_file, "/etc/pgcohere/secret");
  ASSERT_EQ(c.ignored_keys.size(), 1u);
  EXPECT_EQ(c.ignored_keys[0], "test.ini:16: tcp_defer_accept");
}

TEST(Config, PgcoheredSectionIsTheSameAsPgbouncer) {
  auto c = parse_config("[pgcohered]\nlisten_port = 7000\nauth_type = trust\n", "x.ini");
  EXPECT_EQ(c.daemon.listen_port, 7000);
  EXPECT_EQ(error_of("[pgcohered]\nlisten_port = 1\n[pgbouncer]\nlisten_port = 2\nauth_type=trust\n"),
            "test.ini:4: 'listen_port' is already set at test.ini:2");
}

TEST(Config, RefusesMistakesWithFileAndLine) {
  EXPECT_EQ(error_of("[pgbouncer]\nauth_type = trust\nlisten_prot = 1\n"),
            "test.ini:3: unknown key 'listen_prot' in [pgbouncer]");
  EXPECT_EQ(error_of("[pgbouncer]\nauth_type = trust\npool_mode = sometimes\n"),
            "test.ini:3: pool_mode: 'sometimes' is not one of: session, statement, transaction");
  EXPECT_EQ(error_of("[pgbouncer]\nauth_type = trust\ndefault_pool_size = ten\n"),
            "test.ini:3: default_pool_size: expected an integer, got 'ten'");
  EXPECT_EQ(error_of("[pgbouncer]\nauth_type = trust\nquery_timeout = soon\n"),
            "test.ini:3: query_timeout: expected a time in seconds, got 'soon'");
  EXPECT_EQ(error_of("[pgbouncer]\nauth_type = trust\nlog_stats = maybe\n"),
            "test.ini:3: log_stats: expected a boolean (0/1, yes/no, on/off, true/false), got 'maybe'");
  EXPECT_EQ(error_of("[nonsense]\na = b\n"), "test.ini:2: unknown section [nonsense]");
  EXPECT_EQ(error_of("listen_port = 1\n"), "test.ini:1: 'listen_port' appears before any [section]");
  EXPECT_EQ(error_of("[pgbouncer]\nauth_type\n"), "test.ini:2: expected 'key = value', got: auth_type");
  EXPECT_EQ(error_of("[databases]\nx = host=a bogus=1\n"), "test.ini:2: unknown parameter 'bogus' for 'x'");
  EXPECT_EQ(error_of("[databases]\nx = host=a\nx = host=b\n"), "test.ini:3: 'x' is already defined at test.ini:2");
  EXPECT_EQ(error_of("[pgbouncer]\nauth_type = md5\n"), "test.ini: auth_type = md5 needs auth_file (or auth_user)");
}

TEST(Config, SecretsAreRequiredToVerifyInvalidations) {
  EXPECT_EQ(error_of("[databases]\na = host=x\n[pgbouncer]\nauth_type=trust\n[redis]\nurl = redis://h:1/0\n"),
            "test.ini: [invalidation] secret_file is required to verify the extension's signatures");
}

TEST(ConnParams, QuotingAndErrors) {
  auto p = parse_conn_params(R"(host=h  port = 5 password='a b\'c' dbname='')", "f:1");
  EXPECT_EQ(p.at("host"), "h");
  EXPECT_EQ(p.at("port"), "5");
  EXPECT_EQ(p.at("password"), "a b'c");
  EXPECT_EQ(p.at("dbname"), "");
  EXPECT_THROW(parse_conn_params("host='unterminated", "f:1"), ConfigError);
  EXPECT_THROW(parse_conn_params("host", "f:1"), ConfigError);
  EXPECT_THROW(parse_conn_params("host=a host=b", "f:1"), ConfigError);
}

TEST(Config, ListsSettingsWithDefaults) {
  auto c = parse_config("[pgbouncer]\nauth_type = trust\ndefault_pool_size = 7\n", "x.ini");
  bool found = false;
  for (auto& s : pgcohere::config::list_settings(c))
    if (s.key == "default_pool_size") {
      found = true;
      EXPECT_EQ(s.value, "7");
      EXPECT_EQ(s.default_value, "20");
    }
  EXPECT_TRUE(found);
}

TEST(Config, RangesAreCheckedOnTheirLine) {
  EXPECT_EQ(error_of("[pgbouncer]\nauth_type = trust\nlisten_port = 70000\n"),
            "test.ini:3: listen_port: must be between 1 and 65535, got 70000");
}

TEST(Config, SettingsKnowWhichValuesAreSecret) {
  auto c = parse_config("[pgbouncer]\nauth_type = trust\n[redis]\nurl = redis://:pw@127.0.0.1:6379/0\n", "x.ini");
  for (auto& s : pgcohere::config::list_settings(c)) {
    if (s.key == "url") {
      EXPECT_TRUE(s.secret);
    } else if (s.key == "secret_file" || s.key == "listen_port") {
      EXPECT_FALSE(s.secret);
    }
  }
}

TEST(Config, CacheSwitchesActOrAreRefused) {
  auto c = parse_config(
      "[pgcohered]\nauth_type = trust\n[redis]\nurl = redis://127.0.0.1:6379/0\n[invalidation]\nsecret_file = /s\n"
      "[cache]\nenabled = 1\nbypass = 1\ndefault_ttl = 30\nmax_entry_bytes = 4096\nredis_timeout = 50ms\n"
      "single_flight_wait = 2\nrequire_hint = 1\nnamespace = app:\n",
      "test.ini");
  EXPECT_TRUE(c.cache.enabled);
  EXPECT_TRUE(c.cache.bypass);
  EXPECT_EQ(c.cache.default_ttl, 30);
  EXPECT_EQ(c.cache.max_entry_bytes, 4096);
  EXPECT_DOUBLE_EQ(c.cache.redis_timeout, 0.05);
  EXPECT_EQ(c.cache.single_flight_wait, 2);
  EXPECT_TRUE(c.cache.require_hint);
  EXPECT_EQ(c.cache.key_namespace, "app:");
  const std::string trust = "[pgcohered]\nauth_type = trust\n";
  EXPECT_NE(error_of(trust + "[cache]\nenabled = 1\n").find("needs Redis"), std::string::npos);
  EXPECT_NE(error_of(trust + "[redis]\nurl = redis://h:1/0\n[invalidation]\nenabled = 0\n[cache]\nenabled = 1\n")
                .find("[invalidation] enabled = 1"),
            std::string::npos);
  EXPECT_NE(error_of("[cache]\nmax_entry_bytes = 0\n").find("test.ini:2: max_entry_bytes"), std::string::npos);
  EXPECT_NE(error_of("[cache]\nttl = 5\n").find("unknown key 'ttl' in [cache]"), std::string::npos);
}

TEST(Config, ConsoleSetChangesOneReloadableKeyAsTheFileWould) {
  auto c = parse_config("[pgcohered]\nauth_type = trust\ndefault_pool_size = 5\n", "x.ini");
  pgcohere::config::set_daemon_setting(c, "default_pool_size", "2");
  EXPECT_EQ(c.daemon.default_pool_size, 2);
  pgcohere::config::set_daemon_setting(c, "query_timeout", "'2.5'");
  EXPECT_DOUBLE_EQ(c.daemon.query_timeout, 2.5);
}

TEST(Config, ConsoleSetRefusesUnknownRestartOnlyAndBadValuesWithoutChangingAnything) {
  auto c = parse_config("[pgcohered]\nauth_type = trust\ndefault_pool_size = 5\n", "x.ini");
  EXPECT_THROW(pgcohere::config::set_daemon_setting(c, "no_such_key", "1"), std::invalid_argument);
  EXPECT_THROW(pgcohere::config::set_daemon_setting(c, "listen_port", "7000"), std::invalid_argument);
  EXPECT_THROW(pgcohere::config::set_daemon_setting(c, "default_pool_size", "many"), std::invalid_argument);
  // Valid alone, but the whole configuration must stay valid (md5 needs an auth_file).
  EXPECT_THROW(pgcohere::config::set_daemon_setting(c, "auth_type", "md5"), std::invalid_argument);
  EXPECT_EQ(c.daemon.default_pool_size, 5);
  EXPECT_EQ(c.daemon.auth_type, "trust");
  EXPECT_TRUE(pgcohere::config::requires_restart("listen_port"));
  EXPECT_FALSE(pgcohere::config::requires_restart("default_pool_size"));
}

TEST(Config, TlsAndUnixSocketKeysTakePgBouncerValuesAndDefaults) {
  auto d = parse_config("[pgbouncer]\nauth_type = trust\n", "x.ini").daemon;
  EXPECT_EQ(d.unix_socket_dir, "/tmp");
  EXPECT_EQ(d.unix_socket_mode, "0777");
  EXPECT_EQ(d.client_tls_sslmode, "disable");
  EXPECT_EQ(d.server_tls_sslmode, "prefer");
  EXPECT_EQ(d.client_tls_protocols, "secure");
  auto c = parse_config(
      "[pgbouncer]\nauth_type = trust\nunix_socket_dir = /run/pgcohered\nunix_socket_mode = 0770\n"
      "unix_socket_group = postgres\nclient_tls_sslmode = verify-full\nclient_tls_key_file = /k\n"
      "client_tls_cert_file = /c\nclient_tls_ca_file = /ca\nclient_tls_protocols = tlsv1.3\n"
      "server_tls_sslmode = VERIFY-CA\nserver_tls_ca_file = /sca\n",
      "x.ini");
  EXPECT_EQ(c.daemon.unix_socket_mode, "0770");
  EXPECT_EQ(c.daemon.unix_socket_group, "postgres");
  EXPECT_EQ(c.daemon.client_tls_sslmode, "verify-full");
  EXPECT_EQ(c.daemon.server_tls_sslmode, "verify-ca");
  EXPECT_TRUE(c.ignored_keys.empty());
}

TEST(Config, TlsSettingsThatCannotWorkAreRefused) {
  const std::string head = "[pgbouncer]\nauth_type = trust\n";
  EXPECT_EQ(error_of(head + "client_tls_sslmode = require\n"),
            "test.ini: client_tls_sslmode = require needs client_tls_key_file and client_tls_cert_file");
  EXPECT_EQ(error_of(head + "client_tls_sslmode = verify-ca\nclient_tls_key_file = k\nclient_tls_cert_file = c\n"),
            "test.ini: client_tls_sslmode = verify-ca needs client_tls_ca_file (the CA of client certificates)");
  EXPECT_EQ(error_of(head + "server_tls_sslmode = verify-full\n"),
            "test.ini: server_tls_sslmode = verify-full needs server_tls_ca_file (the CA of the server's certificate)");
  EXPECT_EQ(error_of(head + "server_tls_key_file = k\n"),
            "test.ini: server_tls_key_file and server_tls_cert_file go together (the pooler's client certificate)");
  EXPECT_EQ(error_of(head + "client_tls_sslmode = sometimes\n"),
            "test.ini:3: client_tls_sslmode: 'sometimes' is not one of: allow, disable, prefer, require, verify-ca, "
            "verify-full");
  EXPECT_EQ(error_of(head + "server_tls_protocols = sslv3\n"),
            "test.ini:3: server_tls_protocols: unknown TLS protocol 'sslv3' (tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3, "
            "all, secure, legacy, default)");
  EXPECT_EQ(error_of(head + "unix_socket_mode = 0999\n"),
            "test.ini:3: unix_socket_mode: expected an octal file mode such as 0777, got '0999'");
  EXPECT_EQ(error_of("[pgbouncer]\nauth_type = trust\nlisten_addr =\nunix_socket_dir =\n"),
            "test.ini: listen_addr and unix_socket_dir are both empty: nothing to listen on");
}

TEST(Config, AnEntryWithoutHostNeedsAUnixSocketDirectory) {
  // PgBouncer connects such an entry to unix_socket_dir; with none (or an abstract one)
  // there is nowhere to go.
  EXPECT_EQ(error_of("[databases]\napp = port=5433\n[pgbouncer]\nauth_type = trust\nunix_socket_dir =\n"),
            "test.ini:2: [databases] app has no host, and unix_socket_dir = '' is no directory to find "
            "PostgreSQL's socket in: set host (an address, or the socket directory)");
  EXPECT_NE(error_of("[databases]\n* = port=5433\n[pgbouncer]\nauth_type = trust\nunix_socket_dir = @pgc\n"), "");
  EXPECT_EQ(error_of("[databases]\napp = host=127.0.0.1\n[pgbouncer]\nauth_type = trust\nunix_socket_dir =\n"), "");
  EXPECT_EQ(error_of("[databases]\napp = port=5433\n[pgbouncer]\nauth_type = trust\n"), "");
}

TEST(TlsProtocols, ShortcutsNamesAndRemovalsAsPgBouncerSpellsThem) {
  EXPECT_EQ(parse_tls_protocols("secure"), (TlsProtocols{false, false, true, true}));
  EXPECT_EQ(parse_tls_protocols("default"), (TlsProtocols{false, false, true, true}));
  EXPECT_EQ(parse_tls_protocols("all"), (TlsProtocols{true, true, true, true}));
  EXPECT_EQ(parse_tls_protocols("legacy"), (TlsProtocols{true, true, true, true}));
  EXPECT_EQ(parse_tls_protocols("TLSv1.3"), (TlsProtocols{false, false, false, true}));
  EXPECT_EQ(parse_tls_protocols("tlsv1.1, tlsv1.2"), (TlsProtocols{false, true, true, false}));
  EXPECT_EQ(parse_tls_protocols("all:!tlsv1.0:-tlsv1.1"), (TlsProtocols{false, false, true, true}));
  EXPECT_THROW(parse_tls_protocols("tlsv1.3,!tlsv1.3"), std::invalid_argument);
  EXPECT_THROW(parse_tls_protocols(""), std::invalid_argument);
  EXPECT_THROW(parse_tls_protocols("ssl3"), std::invalid_argument);
}

TEST(Config, AuthTypeHbaNeedsAReadableHbaFileWhoseErrorsNameItsOwnLines) {
  EXPECT_EQ(error_of("[pgbouncer]\nauth_type = hba\n"), "test.ini: auth_type = hba needs auth_hba_file");
  char path[] = "/tmp/config-hba-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string good = "host all all 127.0.0.1/32 md5\n";
  ASSERT_EQ(write(fd, good.data(), good.size()), static_cast<ssize_t>(good.size()));
  close(fd);
  std::string ini = std::string("[pgbouncer]\nauth_type = hba\nauth_file = /dev/null\nauth_hba_file = ") + path + "\n";
  auto c = parse_config(ini, "test.ini");
  EXPECT_EQ(c.daemon.auth_hba_file, path);
  std::ofstream(path, std::ios::app) << "host all all db.example.com md5\n";
  EXPECT_EQ(error_of(ini).substr(0, std::string(path).size() + 3), std::string(path) + ":2:");
  std::remove(path);
}

TEST(Config, AuthQueryKeysAreReadAndAuthDbnameMustBeADatabasesEntry) {
  auto c = parse_config(
      "[databases]\nauthdb = host=127.0.0.1\napp = host=127.0.0.1 auth_user=lookup auth_dbname=authdb\n"
      "[pgbouncer]\nauth_type = md5\nauth_user = pgc_auth\nauth_dbname = authdb\nauth_query_cache_ttl = 5\n",
      "test.ini");
  EXPECT_EQ(c.daemon.auth_user, "pgc_auth");
  EXPECT_EQ(c.daemon.auth_dbname, "authdb");
  EXPECT_EQ(c.daemon.auth_query_cache_ttl, 5);
  EXPECT_EQ(c.daemon.auth_query, "SELECT usename, passwd FROM pg_shadow WHERE usename=$1");
  EXPECT_EQ(error_of("[databases]\napp = host=x\n[pgbouncer]\nauth_user = a\nauth_dbname = nowhere\n"),
            "test.ini: auth_dbname = nowhere is not a [databases] entry");
}

TEST(Config, PeersMapPeerIdsToAddressesAndNeedThisProcesssPeerId) {
  auto c = parse_config(
      "[pgbouncer]\nauth_type = trust\npeer_id = 2\n[peers]\n1 = host=/run/p1\n2 = host=10.0.0.2 port=6433 "
      "pool_size=4\n",
      "x.ini");
  EXPECT_EQ(c.daemon.peer_id, 2);
  ASSERT_EQ(c.peers.size(), 2u);
  EXPECT_EQ(c.peers[0].name, "1");
  EXPECT_EQ(c.peers[0].get("host"), "/run/p1");
  EXPECT_EQ(c.peers[1].get("port"), "6433");
  EXPECT_EQ(c.peers[1].get("pool_size"), "4");
  EXPECT_TRUE(c.ignored_keys.empty());
}

TEST(Config, BadPeersAreRefusedWithTheirLine) {
  const std::string head = "[pgbouncer]\nauth_type = trust\npeer_id = 1\n[peers]\n";
  EXPECT_EQ(error_of(head + "0 = host=/a\n"), "test.ini:5: [peers] 0: the key must be a peer_id between 1 and 16383");
  EXPECT_EQ(error_of(head + "16384 = host=/a\n"),
            "test.ini:5: [peers] 16384: the key must be a peer_id between 1 and 16383");
  EXPECT_EQ(error_of(head + "x = host=/a\n"), "test.ini:5: [peers] x: the key must be a peer_id between 1 and 16383");
  EXPECT_EQ(error_of(head + "1 = port=6432\n"),
            "test.ini:5: [peers] 1: host is required (an address, or the directory of the peer's Unix socket)");
  EXPECT_EQ(error_of(head + "1 = host=/a port=70000\n"), "test.ini:5: [peers] 1: port must be a positive integer up to 65535");
  EXPECT_EQ(error_of(head + "1 = host=/a pool_size=0\n"), "test.ini:5: [peers] 1: pool_size must be a positive integer");
  EXPECT_EQ(error_of(head + "1 = host=/a dbname=x\n"), "test.ini:5: unknown parameter 'dbname' for '1'");
  EXPECT_EQ(error_of("[pgbouncer]\nauth_type = trust\n[peers]\n1 = host=/a\n"),
            "test.ini: [peers] needs peer_id (this process's number among them) in [pgcohered]");
  EXPECT_EQ(error_of("[pgbouncer]\nauth_type = trust\npeer_id = 16384\n"),
            "test.ini:3: peer_id: must be between 0 and 16383, got 16384");
}

TEST(Config, PeerIdTakesEffectOnlyAtARestart) {
  EXPECT_TRUE(requires_restart("peer_id"));
  EXPECT_FALSE(requires_restart("shutdown_wait_timeout"));
}

TEST(Config, AuthFailureDelayIsHalfASecondByDefaultTakesUnitsAndZeroTurnsItOff) {
  EXPECT_EQ(parse_config("[pgbouncer]\nauth_type = trust\n", "test.ini").daemon.auth_failure_delay, 0.5);
  EXPECT_DOUBLE_EQ(parse_config("[pgbouncer]\nauth_type = trust\nauth_failure_delay = 250ms\n", "test.ini")
                       .daemon.auth_failure_delay,
                   0.25);
  EXPECT_EQ(parse_config("[pgbouncer]\nauth_type = trust\nauth_failure_delay = 0\n", "test.ini").daemon.auth_failure_delay,
            0);
  EXPECT_NE(error_of("[pgbouncer]\nauth_type = trust\nauth_failure_delay = -1\n").find("expected a time in seconds"),
            std::string::npos);
}

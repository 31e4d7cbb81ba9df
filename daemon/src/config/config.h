// The daemon's configuration: PgBouncer's pgbouncer.ini (same sections, keys and
// meanings) plus pgcohere's [redis], [invalidation] and [cache] sections.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "config/ini.h"

namespace pgcohere::config {

// A [databases] or [users] entry: libpq-style `key=value ...` parameters.
struct ConnEntry {
  std::string name;  // "*" is the [databases] fallback entry
  std::map<std::string, std::string> params;
  std::string origin;  // file:line, for messages

  std::string get(const std::string& key, const std::string& fallback = "") const;
};

struct DaemonSettings {  // [pgcohered], alias [pgbouncer]
  std::string listen_addr = "127.0.0.1";
  int listen_port = 6432;
  std::string unix_socket_dir = "/tmp";  // "": no Unix socket; "@name": Linux abstract namespace
  std::string unix_socket_mode = "0777";  // octal
  std::string unix_socket_group;
  std::string pool_mode = "session";
  int max_client_conn = 100;
  int default_pool_size = 20;
  int min_pool_size = 0;
  int reserve_pool_size = 0;
  double reserve_pool_timeout = 5;
  int max_db_connections = 0;
  int max_user_connections = 0;
  int max_prepared_statements = 200;
  int max_packet_size = 2147483647;
  int pkt_buf = 4096;
  int listen_backlog = 128;
  std::string auth_type = "md5";
  std::string auth_file;
  std::string auth_user;
  std::string auth_query = "SELECT usename, passwd FROM pg_shadow WHERE usename=$1";
  std::string auth_dbname;      // the [databases] entry auth_query runs in ("": the client's)
  std::string auth_hba_file;    // auth_type = hba
  double auth_query_cache_ttl = 30;  // seconds a looked-up secret is reused (0: every login asks)
  // Seconds a failed login waits before it is told (PostgreSQL's auth_delay; 0: at once).
  double auth_failure_delay = 0.5;
  std::vector<std::string> admin_users;
  std::vector<std::string> stats_users;
  std::vector<std::string> ignore_startup_parameters;
  std::vector<std::string> track_extra_parameters;
  std::string server_reset_query = "DISCARD ALL";
  bool server_reset_query_always = false;
  std::string server_check_query = "select 1";
  double server_check_delay = 30;
  double server_lifetime = 3600;
  double server_idle_timeout = 600;
  double server_connect_timeout = 15;
  double server_login_retry = 15;
  bool server_round_robin = false;
  double query_timeout = 0;
  double query_wait_timeout = 120;
  double cancel_wait_timeout = 10;
  double client_idle_timeout = 0;
  double client_login_timeout = 60;
  double idle_transaction_timeout = 0;
  double suspend_timeout = 10;
  double stats_period = 60;
  std::string logfile;
  std::string pidfile;
  bool log_connections = true;
  bool log_disconnections = true;
  bool log_pooler_errors = true;
  bool log_stats = true;
  int verbose = 0;
  bool so_reuseport = false;
  // PgBouncer's peer_id: this process's number among peered processes (1..16383), written
  // into every cancel key it hands out; 0: not peered ([peers] then ignored).
  int peer_id = 0;
  // pgcohere's own: how long SHUTDOWN WAIT_FOR_CLIENTS (or SIGINT) waits for the clients
  // to leave before it closes the rest; 0: no limit.
  double shutdown_wait_timeout = 0;
  bool tcp_keepalive = true;
  // Seconds (0: the system's value), and tcp_user_timeout in milliseconds (0: the system's).
  int tcp_keepidle = 0, tcp_keepintvl = 0, tcp_keepcnt = 0, tcp_user_timeout = 0;
  std::string application_name_add_host;
  // TLS with clients (the pooler is their server) and with PostgreSQL; PgBouncer's keys,
  // meanings and defaults (docs/pooler.md, "TLS").
  std::string client_tls_sslmode = "disable";
  std::string client_tls_key_file;
  std::string client_tls_cert_file;
  std::string client_tls_ca_file;
  std::string client_tls_protocols = "secure";
  std::string client_tls_ciphers = "default";
  std::string client_tls13_ciphers;
  std::string client_tls_ecdhcurve = "auto";
  std::string client_tls_dheparams = "auto";
  std::string server_tls_sslmode = "prefer";
  std::string server_tls_ca_file;
  std::string server_tls_key_file;
  std::string server_tls_cert_file;
  std::string server_tls_protocols = "secure";
  std::string server_tls_ciphers = "default";
  std::string server_tls13_ciphers;
  std::string metrics_addr = "127.0.0.1";
  int metrics_port = 0;  // 0: no /metrics endpoint
};

struct RedisSettings {
  std::string url;  // redis://[:password@]host:port/db; empty: no Redis
  std::vector<std::string> cluster_nodes;  // host:port seeds of a Redis Cluster
  double connect_timeout = 1;
  double command_timeout = 1;
};

struct InvalidationSettings {
  bool enabled = true;
  std::string channel = "pgcohere";
  std::string secret_file;
  double gap_grace = 0.5;      // seconds a missing seq may arrive late before a resync
  double redelete_delay = 0;   // seconds; 0: no delayed re-delete
  double reconnect_min = 0.1;  // LISTEN reconnect backoff, seconds
  double reconnect_max = 5;
  std::string journal_file;    // empty: in memory only
  int journal_max_entries = 100000;
  int max_inflight = 16;       // concurrent purge batches per Redis node
  // Extra glob patterns every resync purges: key families published only through
  // pgcohere.invalidate() that no rule's coarse pattern covers.
  std::vector<std::string> resync_patterns;
  // Pattern purges through index sets kept in Redis (keyspace events of new keys), so that
  // they cost O(matching keys); 0: every pattern purge scans the keyspace.
  bool pattern_index = true;
  double pattern_index_trim = 300;  // seconds between trims of entries whose key is gone; 0: never
};

struct CacheSettings {
  bool enabled = false;
  bool bypass = false;  // also PGCOHERE_CACHE_BYPASS=true (or CACHE_BYPASS=true) at start
  double default_ttl = 60;                  // seconds, for tables whose policy has no ttl
  std::string key_namespace = "pgcohere:";  // key `namespace`
  int max_entry_bytes = 1024 * 1024;        // larger results are not stored
  double redis_timeout = 0.02;              // seconds; a slower cache operation falls through
  double single_flight_wait = 1;            // seconds an identical miss waits for the first
  bool require_hint = false;                // cache only statements with /* pgcohere:cache */
};

struct Config {
  std::string path;
  std::vector<ConnEntry> databases;
  std::vector<ConnEntry> users;
  // [peers]: peer_id -> where that process takes CancelRequests (host=, port=, pool_size=).
  std::vector<ConnEntry> peers;
  DaemonSettings daemon;
  RedisSettings redis;
  InvalidationSettings invalidation;
  CacheSettings cache;
  // Keys PgBouncer knows that pgcohered accepts but does not act on ("file:line: key").
  std::vector<std::string> ignored_keys;

  const ConnEntry* find_database(const std::string& name) const;  // exact name, then "*"
};

// Every setting of the schema with its current and default value (SHOW CONFIG, reload diffs).
struct Setting {
  std::string section;  // "pgcohered", "redis", "invalidation", "cache"
  std::string key;
  std::string value;
  std::string default_value;
  bool secret = false;  // never shown or logged: a password, or a URL carrying one
};
std::vector<Setting> list_settings(const Config& config);

// [pgcohered] keys that only a restart applies (the listening socket, files opened at start).
bool requires_restart(const std::string& key);

// The console's SET: one [pgcohered] key of `config` set from `value` as the file would set
// it, then the whole configuration validated. Throws std::invalid_argument (unknown key,
// restart-only key, bad value); `config` is unchanged then.
void set_daemon_setting(Config& config, const std::string& key, const std::string& value);

// Throws ConfigError ("file:line: message") for a bad file; nothing is half-applied.
Config load_config(const std::string& path);
Config parse_config(const std::string& text, const std::string& path);

// libpq-style "key=value key='quoted value'" as used in [databases] (pure, for tests).
std::map<std::string, std::string> parse_conn_params(const std::string& text, const std::string& origin);

}  // namespace pgcohere::config

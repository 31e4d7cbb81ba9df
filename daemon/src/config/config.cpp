// Typed configuration from ini entries. One schema table lists every key each section
// takes; a key that is not there is refused with its file and line.
#include "config/config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <set>
#include <sstream>

#include "config/tls_protocols.h"
#include "auth/hba.h"

namespace pgcohere::config {
namespace {

using Setter = std::function<void(Config&, const std::string& value)>;
using Getter = std::function<std::string(const Config&)>;

struct Binding {
  Setter set;
  Getter get;
};

struct KeySpec {
  const char* section;
  const char* key;
  Binding bind;
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string unquote(const std::string& v) {
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front())
    return v.substr(1, v.size() - 2);
  return v;
}

long long parse_integer(const std::string& raw) {
  std::string v = unquote(raw);
  size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(v, &used);
  } catch (const std::exception&) {
    throw std::invalid_argument("expected an integer, got '" + v + "'");
  }
  if (used != v.size()) throw std::invalid_argument("expected an integer, got '" + v + "'");
  return n;
}

// PgBouncer times are seconds (fractions allowed); a unit suffix is accepted too.
double parse_seconds(const std::string& raw) {
  std::string v = unquote(raw);
  size_t used = 0;
  double n = 0;
  try {
    n = std::stod(v, &used);
  } catch (const std::exception&) {
    throw std::invalid_argument("expected a time in seconds, got '" + v + "'");
  }
  std::string unit = lower(v.substr(used));
  unit.erase(std::remove(unit.begin(), unit.end(), ' '), unit.end());
  static const std::map<std::string, double> units = {
      {"", 1}, {"us", 1e-6}, {"ms", 1e-3}, {"s", 1}, {"min", 60}, {"h", 3600}, {"d", 86400}};
  auto it = units.find(unit);
  if (it == units.end() || n < 0 || !std::isfinite(n))
    throw std::invalid_argument("expected a time in seconds, got '" + v + "'");
  return n * it->second;
}

bool parse_bool(const std::string& raw) {
  std::string v = lower(unquote(raw));
  if (v == "1" || v == "yes" || v == "on" || v == "true") return true;
  if (v == "0" || v == "no" || v == "off" || v == "false") return false;
  throw std::invalid_argument("expected a boolean (0/1, yes/no, on/off, true/false), got '" + v + "'");
}

std::vector<std::string> parse_list(const std::string& raw) {
  std::vector<std::string> items;
  std::stringstream in(unquote(raw));
  std::string item;
  while (std::getline(in, item, ',')) {
    auto b = item.find_first_not_of(" \t");
    auto e = item.find_last_not_of(" \t");
    if (b != std::string::npos) items.push_back(item.substr(b, e - b + 1));
  }
  return items;
}

std::string format_value(const std::string& v) { return v; }
std::string format_value(bool v) { return v ? "1" : "0"; }
std::string format_value(int v) { return std::to_string(v); }
std::string format_value(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}
std::string format_value(const std::vector<std::string>& v) {
  std::string joined;
  for (auto& item : v) joined += (joined.empty() ? "" : ",") + item;
  return joined;
}

template <typename Section, typename Field>
Binding field(Section Config::*section, Field Section::*member) {
  Getter get = [section, member](const Config& c) { return format_value(c.*section.*member); };
  Setter set = [section, member](Config& c, const std::string& v) {
    auto& target = c.*section.*member;
    if constexpr (std::is_same_v<Field, std::string>) {
      target = unquote(v);
    } else if constexpr (std::is_same_v<Field, bool>) {
      target = parse_bool(v);
    } else if constexpr (std::is_same_v<Field, int>) {
      long long n = parse_integer(v);
      if (n < 0 || n > 2147483647) throw std::invalid_argument("value out of range: " + v);
      target = static_cast<int>(n);
    } else if constexpr (std::is_same_v<Field, double>) {
      target = parse_seconds(v);
    } else {
      target = parse_list(v);
    }
  };
  return {set, get};
}

template <typename Field>
Binding daemon(Field DaemonSettings::*m) { return field(&Config::daemon, m); }
template <typename Field>
Binding redis(Field RedisSettings::*m) { return field(&Config::redis, m); }
template <typename Field>
Binding inval(Field InvalidationSettings::*m) { return field(&Config::invalidation, m); }
template <typename Field>
Binding cache(Field CacheSettings::*m) { return field(&Config::cache, m); }

Binding one_of(Binding b, std::set<std::string> allowed) {
  Setter set = b.set;
  b.set = [set, allowed](Config& c, const std::string& v) {
    if (!allowed.count(lower(unquote(v)))) {
      std::string list;
      for (auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      throw std::invalid_argument("'" + unquote(v) + "' is not one of: " + list);
    }
    set(c, lower(unquote(v)));
  };
  return b;
}

Binding in_range(Binding b, int lo, int hi) {
  Setter set = b.set;
  b.set = [set, lo, hi](Config& c, const std::string& v) {
    long long n = parse_integer(v);
    if (n < lo || n > hi)
      throw std::invalid_argument("must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
                                  std::to_string(n));
    set(c, v);
  };
  return b;
}

// A file mode in octal, as chmod takes it ("0777", "660").
Binding octal_mode(Binding b) {
  Setter set = b.set;
  b.set = [set](Config& c, const std::string& v) {
    std::string m = unquote(v);
    bool octal = !m.empty() && m.size() <= 4 && m.find_first_not_of("01234567") == std::string::npos;
    if (!octal) throw std::invalid_argument("expected an octal file mode such as 0777, got '" + m + "'");
    set(c, m);
  };
  return b;
}

// A TLS protocol list ("secure", "tlsv1.2,tlsv1.3", ...), checked when it is read.
Binding tls_protocols(Binding b) {
  Setter set = b.set;
  b.set = [set](Config& c, const std::string& v) {
    parse_tls_protocols(unquote(v));
    set(c, v);
  };
  return b;
}

const std::set<std::string> kSslModes = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"};

const std::vector<KeySpec>& schema() {
  static const std::vector<KeySpec> keys = {
      {"pgcohered", "listen_addr", daemon(&DaemonSettings::listen_addr)},
      {"pgcohered", "listen_port", in_range(daemon(&DaemonSettings::listen_port), 1, 65535)},
      {"pgcohered", "unix_socket_dir", daemon(&DaemonSettings::unix_socket_dir)},
      {"pgcohered", "unix_socket_mode", octal_mode(daemon(&DaemonSettings::unix_socket_mode))},
      {"pgcohered", "unix_socket_group", daemon(&DaemonSettings::unix_socket_group)},
      {"pgcohered", "pool_mode", one_of(daemon(&DaemonSettings::pool_mode), {"session", "transaction", "statement"})},
      {"pgcohered", "max_client_conn", daemon(&DaemonSettings::max_client_conn)},
      {"pgcohered", "default_pool_size", in_range(daemon(&DaemonSettings::default_pool_size), 1, 100000)},
      {"pgcohered", "min_pool_size", daemon(&DaemonSettings::min_pool_size)},
      {"pgcohered", "reserve_pool_size", daemon(&DaemonSettings::reserve_pool_size)},
      {"pgcohered", "reserve_pool_timeout", daemon(&DaemonSettings::reserve_pool_timeout)},
      {"pgcohered", "max_db_connections", daemon(&DaemonSettings::max_db_connections)},
      {"pgcohered", "max_user_connections", daemon(&DaemonSettings::max_user_connections)},
      {"pgcohered", "max_prepared_statements", daemon(&DaemonSettings::max_prepared_statements)},
      {"pgcohered", "max_packet_size", daemon(&DaemonSettings::max_packet_size)},
      {"pgcohered", "pkt_buf", daemon(&DaemonSettings::pkt_buf)},
      {"pgcohered", "listen_backlog", daemon(&DaemonSettings::listen_backlog)},
      {"pgcohered", "auth_type", one_of(daemon(&DaemonSettings::auth_type), {"trust", "any", "md5", "scram-sha-256", "plain", "hba"})},
      {"pgcohered", "auth_file", daemon(&DaemonSettings::auth_file)},
      {"pgcohered", "auth_user", daemon(&DaemonSettings::auth_user)},
      {"pgcohered", "auth_query", daemon(&DaemonSettings::auth_query)},
      {"pgcohered", "auth_dbname", daemon(&DaemonSettings::auth_dbname)},
      {"pgcohered", "auth_hba_file", daemon(&DaemonSettings::auth_hba_file)},
      {"pgcohered", "auth_query_cache_ttl", daemon(&DaemonSettings::auth_query_cache_ttl)},
      {"pgcohered", "auth_failure_delay", daemon(&DaemonSettings::auth_failure_delay)},
      {"pgcohered", "admin_users", daemon(&DaemonSettings::admin_users)},
      {"pgcohered", "stats_users", daemon(&DaemonSettings::stats_users)},
      {"pgcohered", "ignore_startup_parameters", daemon(&DaemonSettings::ignore_startup_parameters)},
      {"pgcohered", "track_extra_parameters", daemon(&DaemonSettings::track_extra_parameters)},
      {"pgcohered", "server_reset_query", daemon(&DaemonSettings::server_reset_query)},
      {"pgcohered", "server_reset_query_always", daemon(&DaemonSettings::server_reset_query_always)},
      {"pgcohered", "server_check_query", daemon(&DaemonSettings::server_check_query)},
      {"pgcohered", "server_check_delay", daemon(&DaemonSettings::server_check_delay)},
      {"pgcohered", "server_lifetime", daemon(&DaemonSettings::server_lifetime)},
      {"pgcohered", "server_idle_timeout", daemon(&DaemonSettings::server_idle_timeout)},
      {"pgcohered", "server_connect_timeout", daemon(&DaemonSettings::server_connect_timeout)},
      {"pgcohered", "server_login_retry", daemon(&DaemonSettings::server_login_retry)},
      {"pgcohered", "server_round_robin", daemon(&DaemonSettings::server_round_robin)},
      {"pgcohered", "query_timeout", daemon(&DaemonSettings::query_timeout)},
      {"pgcohered", "query_wait_timeout", daemon(&DaemonSettings::query_wait_timeout)},
      {"pgcohered", "cancel_wait_timeout", daemon(&DaemonSettings::cancel_wait_timeout)},
      {"pgcohered", "client_idle_timeout", daemon(&DaemonSettings::client_idle_timeout)},
      {"pgcohered", "client_login_timeout", daemon(&DaemonSettings::client_login_timeout)},
      {"pgcohered", "idle_transaction_timeout", daemon(&DaemonSettings::idle_transaction_timeout)},
      {"pgcohered", "suspend_timeout", daemon(&DaemonSettings::suspend_timeout)},
      {"pgcohered", "stats_period", daemon(&DaemonSettings::stats_period)},
      {"pgcohered", "logfile", daemon(&DaemonSettings::logfile)},
      {"pgcohered", "pidfile", daemon(&DaemonSettings::pidfile)},
      {"pgcohered", "log_connections", daemon(&DaemonSettings::log_connections)},
      {"pgcohered", "log_disconnections", daemon(&DaemonSettings::log_disconnections)},
      {"pgcohered", "log_pooler_errors", daemon(&DaemonSettings::log_pooler_errors)},
      {"pgcohered", "log_stats", daemon(&DaemonSettings::log_stats)},
      {"pgcohered", "verbose", daemon(&DaemonSettings::verbose)},
      {"pgcohered", "so_reuseport", daemon(&DaemonSettings::so_reuseport)},
      {"pgcohered", "peer_id", in_range(daemon(&DaemonSettings::peer_id), 0, 16383)},
      {"pgcohered", "shutdown_wait_timeout", daemon(&DaemonSettings::shutdown_wait_timeout)},
      {"pgcohered", "tcp_keepalive", daemon(&DaemonSettings::tcp_keepalive)},
      {"pgcohered", "tcp_keepidle", in_range(daemon(&DaemonSettings::tcp_keepidle), 0, 32767)},
      {"pgcohered", "tcp_keepintvl", in_range(daemon(&DaemonSettings::tcp_keepintvl), 0, 32767)},
      {"pgcohered", "tcp_keepcnt", in_range(daemon(&DaemonSettings::tcp_keepcnt), 0, 127)},
      {"pgcohered", "tcp_user_timeout", in_range(daemon(&DaemonSettings::tcp_user_timeout), 0, 2147483647)},
      {"pgcohered", "application_name_add_host", daemon(&DaemonSettings::application_name_add_host)},
      {"pgcohered", "client_tls_sslmode", one_of(daemon(&DaemonSettings::client_tls_sslmode), kSslModes)},
      {"pgcohered", "client_tls_key_file", daemon(&DaemonSettings::client_tls_key_file)},
      {"pgcohered", "client_tls_cert_file", daemon(&DaemonSettings::client_tls_cert_file)},
      {"pgcohered", "client_tls_ca_file", daemon(&DaemonSettings::client_tls_ca_file)},
      {"pgcohered", "client_tls_protocols", tls_protocols(daemon(&DaemonSettings::client_tls_protocols))},
      {"pgcohered", "client_tls_ciphers", daemon(&DaemonSettings::client_tls_ciphers)},
      {"pgcohered", "client_tls13_ciphers", daemon(&DaemonSettings::client_tls13_ciphers)},
      {"pgcohered", "client_tls_ecdhcurve", daemon(&DaemonSettings::client_tls_ecdhcurve)},
      {"pgcohered", "client_tls_dheparams",
       one_of(daemon(&DaemonSettings::client_tls_dheparams), {"none", "auto", "legacy"})},
      {"pgcohered", "server_tls_sslmode", one_of(daemon(&DaemonSettings::server_tls_sslmode), kSslModes)},
      {"pgcohered", "server_tls_ca_file", daemon(&DaemonSettings::server_tls_ca_file)},
      {"pgcohered", "server_tls_key_file", daemon(&DaemonSettings::server_tls_key_file)},
      {"pgcohered", "server_tls_cert_file", daemon(&DaemonSettings::server_tls_cert_file)},
      {"pgcohered", "server_tls_protocols", tls_protocols(daemon(&DaemonSettings::server_tls_protocols))},
      {"pgcohered", "server_tls_ciphers", daemon(&DaemonSettings::server_tls_ciphers)},
      {"pgcohered", "server_tls13_ciphers", daemon(&DaemonSettings::server_tls13_ciphers)},
      {"pgcohered", "metrics_addr", daemon(&DaemonSettings::metrics_addr)},
      {"pgcohered", "metrics_port", in_range(daemon(&DaemonSettings::metrics_port), 0, 65535)},
      {"redis", "url", redis(&RedisSettings::url)},
      {"redis", "cluster_nodes", redis(&RedisSettings::cluster_nodes)},
      {"redis", "connect_timeout", redis(&RedisSettings::connect_timeout)},
      {"redis", "command_timeout", redis(&RedisSettings::command_timeout)},
      {"invalidation", "enabled", inval(&InvalidationSettings::enabled)},
      {"invalidation", "channel", inval(&InvalidationSettings::channel)},
      {"invalidation", "secret_file", inval(&InvalidationSettings::secret_file)},
      {"invalidation", "gap_grace", inval(&InvalidationSettings::gap_grace)},
      {"invalidation", "redelete_delay", inval(&InvalidationSettings::redelete_delay)},
      {"invalidation", "reconnect_min", inval(&InvalidationSettings::reconnect_min)},
      {"invalidation", "reconnect_max", inval(&InvalidationSettings::reconnect_max)},
      {"invalidation", "journal_file", inval(&InvalidationSettings::journal_file)},
      {"invalidation", "journal_max_entries", inval(&InvalidationSettings::journal_max_entries)},
      {"invalidation", "max_inflight", inval(&InvalidationSettings::max_inflight)},
      {"invalidation", "pattern_index", inval(&InvalidationSettings::pattern_index)},
      {"invalidation", "pattern_index_trim", inval(&InvalidationSettings::pattern_index_trim)},
      {"invalidation", "resync_patterns", inval(&InvalidationSettings::resync_patterns)},
      {"cache", "enabled", cache(&CacheSettings::enabled)},
      {"cache", "bypass", cache(&CacheSettings::bypass)},
      {"cache", "default_ttl", cache(&CacheSettings::default_ttl)},
      {"cache", "namespace", cache(&CacheSettings::key_namespace)},
      {"cache", "max_entry_bytes", in_range(cache(&CacheSettings::max_entry_bytes), 1, 512 * 1024 * 1024)},
      {"cache", "redis_timeout", cache(&CacheSettings::redis_timeout)},
      {"cache", "single_flight_wait", cache(&CacheSettings::single_flight_wait)},
      {"cache", "require_hint", cache(&CacheSettings::require_hint)},
  };
  return keys;
}

// PgBouncer settings pgcohered accepts so that a pgbouncer.ini loads unchanged, but does
// not act on; each is reported at start-up.
const std::set<std::string>& ignored_pgbouncer_keys() {
  static const std::set<std::string> keys = {
      "user", "disable_pqexec", "conffile",
      "service_name", "job_name", "auth_ident_file", "syslog",
      "syslog_ident", "syslog_facility", "server_fast_close", "autodb_idle_timeout", "dns_max_ttl",
      "dns_nxdomain_ttl", "dns_zone_check_period", "resolv_conf", "sbuf_loopcnt", "tcp_defer_accept",
      "tcp_socket_buffer",
      "max_user_client_connections", "max_db_client_connections", "query_wait_notify"};
  return keys;
}

// Keys a [databases] entry may carry (PgBouncer's), and those of a [users] entry.
const std::set<std::string> kDatabaseKeys = {
    "dbname", "host", "port", "user", "password", "auth_user", "auth_query", "auth_dbname",
    "client_encoding", "datestyle", "timezone", "pool_size", "min_pool_size", "reserve_pool",
    "reserve_pool_size", "connect_query", "pool_mode", "max_db_connections", "server_lifetime",
    "load_balance_hosts", "application_name"};
const std::set<std::string> kPeerKeys = {"host", "port", "pool_size"};
const std::set<std::string> kUserKeys = {"pool_mode", "max_user_connections", "pool_size",
                                         "reserve_pool_size", "query_timeout", "idle_transaction_timeout",
                                         "client_idle_timeout", "max_user_client_connections"};

void add_entry(std::vector<ConnEntry>& list, const IniEntry& e, const std::set<std::string>& allowed) {
  ConnEntry entry{unquote(e.key), parse_conn_params(e.value, e.origin()), e.origin()};
  for (auto& [k, v] : entry.params)
    if (!allowed.count(k)) throw ConfigError(e.origin() + ": unknown parameter '" + k + "' for '" + entry.name + "'");
  for (auto& existing : list)
    if (existing.name == entry.name)
      throw ConfigError(e.origin() + ": '" + entry.name + "' is already defined at " + existing.origin);
  list.push_back(std::move(entry));
}

void validate(const Config& c) {
  auto fail = [&](const std::string& m) { throw ConfigError(c.path + ": " + m); };
  if ((c.daemon.auth_type == "md5" || c.daemon.auth_type == "scram-sha-256" || c.daemon.auth_type == "plain") &&
      c.daemon.auth_file.empty() && c.daemon.auth_user.empty())
    fail("auth_type = " + c.daemon.auth_type + " needs auth_file (or auth_user)");
  if (c.daemon.auth_type == "hba") {
    if (c.daemon.auth_hba_file.empty()) fail("auth_type = hba needs auth_hba_file");
    try {
      auth::load_hba(c.daemon.auth_hba_file);  // its errors are file:line of that file
    } catch (const auth::HbaError& e) {
      throw ConfigError(e.what());
    }
  }
  if (!c.daemon.auth_dbname.empty() && !c.find_database(c.daemon.auth_dbname))
    fail("auth_dbname = " + c.daemon.auth_dbname + " is not a [databases] entry");
  if (!c.redis.url.empty() && c.redis.url.rfind("redis://", 0) != 0)
    fail("[redis] url must start with redis://");
  if (c.cache.enabled && c.redis.url.empty() && c.redis.cluster_nodes.empty())
    fail("[cache] enabled = 1 needs Redis: set [redis] url (or cluster_nodes)");
  if (c.cache.enabled && !c.invalidation.enabled)
    fail("[cache] enabled = 1 needs [invalidation] enabled = 1: entries are invalidated by the extension's stream");
  if (c.cache.enabled && c.cache.default_ttl <= 0) fail("[cache] default_ttl must be greater than 0");
  if (c.cache.enabled && c.cache.redis_timeout <= 0) fail("[cache] redis_timeout must be greater than 0");
  const DaemonSettings& d = c.daemon;
  if (d.client_tls_sslmode != "disable" && (d.client_tls_key_file.empty() || d.client_tls_cert_file.empty()))
    fail("client_tls_sslmode = " + d.client_tls_sslmode + " needs client_tls_key_file and client_tls_cert_file");
  if ((d.client_tls_sslmode == "verify-ca" || d.client_tls_sslmode == "verify-full") && d.client_tls_ca_file.empty())
    fail("client_tls_sslmode = " + d.client_tls_sslmode + " needs client_tls_ca_file (the CA of client certificates)");
  if ((d.server_tls_sslmode == "verify-ca" || d.server_tls_sslmode == "verify-full") && d.server_tls_ca_file.empty())
    fail("server_tls_sslmode = " + d.server_tls_sslmode + " needs server_tls_ca_file (the CA of the server's certificate)");
  if (d.server_tls_key_file.empty() != d.server_tls_cert_file.empty())
    fail("server_tls_key_file and server_tls_cert_file go together (the pooler's client certificate)");
  if (d.listen_addr.empty() && d.unix_socket_dir.empty())
    fail("listen_addr and unix_socket_dir are both empty: nothing to listen on");
  // PgBouncer connects an entry without host to unix_socket_dir (and fails each connection
  // when that is empty); here it is refused at load. An abstract socket (@name) is only
  // for listening: server connections need a directory.
  if (d.unix_socket_dir.empty() || d.unix_socket_dir[0] == '@') {
    for (const ConnEntry& db : c.databases)
      if (db.get("host").empty())
        throw ConfigError(db.origin + ": [databases] " + db.name + " has no host, and unix_socket_dir = '" +
                          d.unix_socket_dir +
                          "' is no directory to find PostgreSQL's socket in: set host (an address, or "
                          "the socket directory)");
  }
  for (const ConnEntry& p : c.peers) {
    auto bad = [&](const std::string& m) { throw ConfigError(p.origin + ": [peers] " + p.name + ": " + m); };
    if (p.name.empty() || p.name.size() > 5 || p.name.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(p.name) < 1 || std::stoi(p.name) > 16383)
      bad("the key must be a peer_id between 1 and 16383");
    if (p.get("host").empty()) bad("host is required (an address, or the directory of the peer's Unix socket)");
    for (const char* k : {"port", "pool_size"}) {
      std::string v = p.get(k, "1");
      if (v.empty() || v.size() > 5 || v.find_first_not_of("0123456789") != std::string::npos || std::stoi(v) < 1 ||
          (std::string(k) == "port" && std::stoi(v) > 65535))
        bad(std::string(k) + " must be a positive integer" + (std::string(k) == "port" ? " up to 65535" : ""));
    }
  }
  if (!c.peers.empty() && d.peer_id == 0)
    fail("[peers] needs peer_id (this process's number among them) in [pgcohered]");
  if (c.invalidation.enabled && !c.databases.empty() && !c.redis.url.empty() && c.invalidation.secret_file.empty())
    fail("[invalidation] secret_file is required to verify the extension's signatures");
}

}  // namespace

std::string ConnEntry::get(const std::string& key, const std::string& fallback) const {
  auto it = params.find(key);
  return it == params.end() ? fallback : it->second;
}

const ConnEntry* Config::find_database(const std::string& name) const {
  const ConnEntry* wildcard = nullptr;
  for (auto& d : databases) {
    if (d.name == name) return &d;
    if (d.name == "*") wildcard = &d;
  }
  return wildcard;
}

std::map<std::string, std::string> parse_conn_params(const std::string& text, const std::string& origin) {
  std::map<std::string, std::string> params;
  size_t i = 0;
  auto fail = [&](const std::string& m) { throw ConfigError(origin + ": " + m); };
  auto skip_space = [&] { while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i; };
  while (true) {
    skip_space();
    if (i >= text.size()) break;
    size_t key_start = i;
    while (i < text.size() && text[i] != '=' && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    std::string key = lower(text.substr(key_start, i - key_start));
    skip_space();
    if (i >= text.size() || text[i] != '=') fail("expected '=' after '" + key + "'");
    ++i;
    skip_space();
    std::string value;
    if (i < text.size() && text[i] == '\'') {
      ++i;
      bool closed = false;
      while (i < text.size()) {
        char ch = text[i++];
        if (ch == '\\' && i < text.size()) { value += text[i++]; continue; }
        if (ch == '\'') {
          if (i < text.size() && text[i] == '\'') { value += '\''; ++i; continue; }
          closed = true;
          break;
        }
        value += ch;
      }
      if (!closed) fail("unterminated quote in value of '" + key + "'");
    } else {
      while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) value += text[i++];
    }
    if (key.empty()) fail("empty parameter name");
    if (params.count(key)) fail("parameter '" + key + "' given twice");
    params[key] = value;
  }
  return params;
}

namespace {
Config build_config(const std::vector<IniEntry>& entries, const std::string& path) {
  Config c;
  c.path = path;
  std::map<std::string, std::string> seen;  // "section.key" -> origin
  for (const IniEntry& e : entries) {
    std::string section = e.section == "pgbouncer" ? "pgcohered" : e.section;
    if (section == "databases") { add_entry(c.databases, e, kDatabaseKeys); continue; }
    if (section == "users") { add_entry(c.users, e, kUserKeys); continue; }
    if (section == "peers") { add_entry(c.peers, e, kPeerKeys); continue; }
    std::string key = lower(e.key);
    auto& specs = schema();
    auto spec = std::find_if(specs.begin(), specs.end(),
                             [&](const KeySpec& s) { return section == s.section && key == s.key; });
    if (spec == specs.end()) {
      if (section == "pgcohered" && ignored_pgbouncer_keys().count(key)) {
        c.ignored_keys.push_back(e.origin() + ": " + key);
        continue;
      }
      static const std::set<std::string> sections = {"pgcohered", "redis", "invalidation", "cache"};
      if (!sections.count(section)) throw ConfigError(e.origin() + ": unknown section [" + e.section + "]");
      throw ConfigError(e.origin() + ": unknown key '" + e.key + "' in [" + e.section + "]");
    }
    auto [it, fresh] = seen.emplace(section + "." + key, e.origin());
    if (!fresh) throw ConfigError(e.origin() + ": '" + key + "' is already set at " + it->second);
    try {
      spec->bind.set(c, e.value);
    } catch (const std::invalid_argument& err) {
      throw ConfigError(e.origin() + ": " + key + ": " + err.what());
    }
  }
  validate(c);
  return c;
}

}  // namespace

std::vector<Setting> list_settings(const Config& config) {
  static const Config defaults;
  std::vector<Setting> out;
  for (auto& spec : schema()) {
    Setting st{spec.section, spec.key, spec.bind.get(config), spec.bind.get(defaults)};
    // A Redis URL can carry a password (redis://:pw@host); file paths are not secrets.
    st.secret = st.key.find("password") != std::string::npos ||
                (st.key == "url" && st.value.find('@') != std::string::npos);
    out.push_back(std::move(st));
  }
  return out;
}

bool requires_restart(const std::string& key) {
  static const std::set<std::string> keys = {"listen_addr", "listen_port", "unix_socket_dir", "unix_socket_mode",
                                             "unix_socket_group", "listen_backlog", "so_reuseport", "peer_id", "pidfile",
                                             "logfile", "pkt_buf"};
  return keys.count(key) > 0;
}

void set_daemon_setting(Config& config, const std::string& key, const std::string& value) {
  const KeySpec* spec = nullptr;
  for (auto& k : schema())
    if (std::string(k.section) == "pgcohered" && k.key == key) spec = &k;
  if (!spec) throw std::invalid_argument("unknown setting: " + key);
  if (requires_restart(key)) throw std::invalid_argument(key + " takes effect only at a restart");
  Config next = config;
  spec->bind.set(next, value);
  try {
    validate(next);
  } catch (const ConfigError& e) {
    throw std::invalid_argument(e.what());
  }
  config = std::move(next);
}

Config parse_config(const std::string& text, const std::string& path) {
  return build_config(parse_ini(text, path), path);
}

Config load_config(const std::string& path) { return build_config(read_ini_file(path), path); }

}  // namespace pgcohere::config

// Plain data the pooler fills for the console's SHOW commands (no pointers into the pool).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>


namespace pgcohere::admin {

// One row of SHOW POOLS: one (database, user) pool.
struct PoolRow {
  std::string database;
  std::string user;
  int cl_active = 0;
  int cl_waiting = 0;
  int cl_active_cancel_req = 0;
  int cl_waiting_cancel_req = 0;
  int sv_active = 0;
  int sv_active_cancel = 0;
  int sv_being_canceled = 0;
  int sv_idle = 0;
  int sv_used = 0;
  int sv_tested = 0;
  int sv_login = 0;
  std::int64_t maxwait_us = 0;  // how long the oldest waiting client has waited
  std::string pool_mode;        // session | transaction | statement
  std::optional<std::string> load_balance_hosts;
};

// One row of SHOW CLIENTS or SHOW SERVERS.
struct SocketRow {
  std::string user;
  std::string database;
  std::string replication = "none";
  // clients: active | idle | waiting | active_cancel_req | waiting_cancel_req;
  // servers: active | idle | used | tested | new | active_cancel | being_canceled
  std::string state;
  std::string addr;
  int port = 0;
  std::string local_addr;
  int local_port = 0;
  std::int64_t connect_time_us = 0;  // Unix time in microseconds
  std::int64_t request_time_us = 0;
  std::int64_t wait_us = 0;          // time the current query has waited
  bool close_needed = false;
  std::string ptr;                   // an opaque identity of this connection
  std::string link;                  // ptr of the paired connection, "" when none
  int remote_pid = 0;                // servers: backend PID
  std::string tls;                   // "" when plain TCP
  std::string application_name;
  int prepared_statements = 0;
  std::int64_t id = 0;               // KILL_CLIENT takes it
};
using ClientRow = SocketRow;
using ServerRow = SocketRow;

struct DatabaseRow {
  std::string name;
  std::optional<std::string> host;
  int port = 0;
  std::string database;  // dbname on the server
  std::optional<std::string> force_user;
  int pool_size = 0;
  int min_pool_size = 0;
  int reserve_pool_size = 0;
  int server_lifetime = 0;  // seconds
  std::optional<std::string> pool_mode;  // nullopt: inherits the global pool_mode
  std::optional<std::string> load_balance_hosts;
  int max_connections = 0;
  int current_connections = 0;
  int max_client_connections = 0;
  int current_client_connections = 0;
  bool paused = false;
  bool disabled = false;
};

struct UserRow {
  std::string name;
  std::optional<int> pool_size;  // nullopt: not set for this user
  std::optional<int> reserve_pool_size;
  std::optional<std::string> pool_mode;
  int max_user_connections = 0;
  int current_connections = 0;
  int max_user_client_connections = 0;
  int current_client_connections = 0;
};

// PgBouncer's per-database counters. Times in microseconds, bytes in bytes.
struct StatsCounters {
  std::uint64_t server_assignment_count = 0;
  std::uint64_t xact_count = 0;
  std::uint64_t query_count = 0;
  std::uint64_t bytes_received = 0;  // from clients
  std::uint64_t bytes_sent = 0;      // to clients
  std::uint64_t xact_time = 0;
  std::uint64_t query_time = 0;
  std::uint64_t wait_time = 0;
  std::uint64_t client_parse_count = 0;
  std::uint64_t server_parse_count = 0;
  std::uint64_t bind_count = 0;
  std::uint64_t client_login_count = 0;
};

// PgBouncer's averages over the last stats period: counts and bytes per second, times per
// transaction / query / server assignment.
StatsCounters compute_averages(const StatsCounters& current, const StatsCounters& previous,
                               std::uint64_t period_us);

struct StatsRow {
  std::string database;
  StatsCounters totals;
  StatsCounters averages;  // see compute_averages
};

struct ConfigRow {
  std::string key;
  std::string value;
  std::string default_value;
  bool changeable = true;
};

struct ListsRow {
  std::int64_t databases = 0, users = 0, peers = 0, pools = 0, peer_pools = 0;
  std::int64_t free_clients = 0, used_clients = 0, login_clients = 0;
  std::int64_t free_servers = 0, used_servers = 0;
  std::int64_t dns_names = 0, dns_zones = 0, dns_queries = 0, dns_pending = 0;
};

struct MemRow {
  std::string name;
  int size = 0;
  int used = 0;
  int free = 0;
  int memtotal = 0;
};

// One row of SHOW CACHE: one database's query cache counters.
struct CacheRow {
  std::string database;
  std::uint64_t hits = 0, misses = 0, stores = 0, stale_refused = 0, not_stored = 0, bypassed = 0;
  std::uint64_t uncacheable = 0, redis_errors = 0, single_flight_hits = 0, bytes_stored = 0;
  std::uint64_t invalidations = 0;  // cache tags this daemon invalidated (all databases)
  std::uint64_t evictions = 0;      // Redis INFO evicted_keys
  std::string health;               // ok | redis down | bypassed | loading policies
};

// One row of SHOW CACHE RULES: a cache-enabled table of a database.
struct CacheRuleRow {
  std::string database;
  std::string table;  // schema.name
  std::uint32_t relid = 0;
  std::optional<std::int64_t> ttl_ms;  // nullopt: [cache] default_ttl
  std::string by;                      // the row-tag columns, comma-separated
};

// The SHOW VERSION text; it contains "PgBouncer 1.24.0" so that exporters which parse the
// version pick PgBouncer 1.24's column set.
std::string version_string();

// SHOW PEERS and SHOW PEER_POOLS: a [peers] entry and its forwarded cancels in flight.
struct PeerRow {
  int peer_id = 0;
  std::string host;
  int port = 0;
  int pool_size = 0;
  int in_flight = 0;
};

struct Snapshot {
  std::vector<PoolRow> pools;
  std::vector<ClientRow> clients;
  std::vector<ServerRow> servers;
  std::vector<DatabaseRow> databases;
  std::vector<UserRow> users;
  std::vector<PeerRow> peers;
  std::vector<StatsRow> stats;
  std::vector<ConfigRow> config;
  ListsRow lists;
  std::vector<MemRow> mem;
  bool paused = false;
  bool suspended = false;
  std::vector<CacheRow> cache;
  std::vector<CacheRuleRow> cache_rules;
  std::string cache_error;  // SHOW CACHE without a cache: why
};

}  // namespace pgcohere::admin

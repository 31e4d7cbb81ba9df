// Builders of the SHOW result sets.
#include "admin/show.h"

#include <cstdio>
#include <ctime>
#include <initializer_list>

namespace pgcohere::admin {

namespace {

// PgBouncer's RowDescription type letters: s text, i int4, q int8, N numeric, T timestamp
// sent as text.
std::vector<Column> columns(std::string_view types, std::initializer_list<const char*> names) {
  std::vector<Column> out;
  std::size_t i = 0;
  for (const char* name : names) {
    Column c;
    c.name = name;
    switch (types.at(i++)) {
      case 'i': c.type_oid = oid::int4; c.type_size = 4; break;
      case 'q': c.type_oid = oid::int8; c.type_size = 8; break;
      case 'N': c.type_oid = oid::numeric; c.type_size = -1; break;
      default: c.type_oid = oid::text; c.type_size = -1; break;
    }
    out.push_back(std::move(c));
  }
  return out;
}

ResultSet result(std::vector<Column> cols) {
  ResultSet r;
  r.columns = std::move(cols);
  r.command_tag = "SHOW";
  return r;
}

std::optional<std::string> n(std::int64_t v) { return std::to_string(v); }
std::optional<std::string> u(std::uint64_t v) { return std::to_string(v); }
std::optional<std::string> s(const std::string& v) { return v; }
std::optional<std::string> s(const std::optional<std::string>& v) { return v; }

const std::vector<Column>& socket_columns() {
  static const std::vector<Column> cols = columns(
      "ssssssisiTTiiississii",
      {"type", "user", "database", "replication", "state", "addr", "port", "local_addr",
       "local_port", "connect_time", "request_time", "wait", "wait_us", "close_needed", "ptr",
       "link", "remote_pid", "tls", "application_name", "prepared_statements", "id"});
  return cols;
}

Row socket_row(const SocketRow& r, const char* type) {
  return {type,
          s(r.user),
          s(r.database),
          s(r.replication),
          s(r.state),
          s(r.addr),
          n(r.port),
          s(r.local_addr),
          n(r.local_port),
          format_timestamp(r.connect_time_us),
          format_timestamp(r.request_time_us),
          n(r.wait_us / 1000000),
          n(r.wait_us % 1000000),
          n(r.close_needed ? 1 : 0),
          s(r.ptr),
          s(r.link),
          n(r.remote_pid),
          s(r.tls),
          s(r.application_name),
          n(r.prepared_statements),
          n(r.id)};
}

void append_counters(Row& row, const StatsCounters& c) {
  for (std::uint64_t v : {c.server_assignment_count, c.xact_count, c.query_count, c.bytes_received,
                          c.bytes_sent, c.xact_time, c.query_time, c.wait_time,
                          c.client_parse_count, c.server_parse_count, c.bind_count,
                          c.client_login_count})
    row.push_back(u(v));
}

// PgBouncer prints per-user pool sizes with "%9d" (right-aligned in 9 characters).
std::optional<std::string> padded(const std::optional<int>& v) {
  if (!v) return std::string();
  char buf[16];
  std::snprintf(buf, sizeof buf, "%9d", *v);
  return std::string(buf);
}

StatsCounters add(StatsCounters a, const StatsCounters& b) {
  a.server_assignment_count += b.server_assignment_count;
  a.xact_count += b.xact_count;
  a.query_count += b.query_count;
  a.bytes_received += b.bytes_received;
  a.bytes_sent += b.bytes_sent;
  a.xact_time += b.xact_time;
  a.query_time += b.query_time;
  a.wait_time += b.wait_time;
  a.client_parse_count += b.client_parse_count;
  a.server_parse_count += b.server_parse_count;
  a.bind_count += b.bind_count;
  a.client_login_count += b.client_login_count;
  return a;
}

}  // namespace

std::string format_timestamp(std::int64_t unix_us) {
  std::time_t secs = static_cast<std::time_t>(unix_us / 1000000);
  std::tm tm{};
  localtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d %s", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                tm.tm_zone ? tm.tm_zone : "");
  return buf;
}

StatsCounters compute_averages(const StatsCounters& cur, const StatsCounters& old,
                               std::uint64_t period_us) {
  StatsCounters avg;
  if (period_us == 0) return avg;
  constexpr std::uint64_t kUsec = 1000000;
  auto rate = [&](std::uint64_t c, std::uint64_t o) { return c >= o ? kUsec * (c - o) / period_us : 0; };
  auto per = [](std::uint64_t dt, std::uint64_t dn) { return dn ? dt / dn : 0; };
  std::uint64_t queries = cur.query_count - old.query_count;
  std::uint64_t xacts = cur.xact_count - old.xact_count;
  std::uint64_t assignments = cur.server_assignment_count - old.server_assignment_count;
  avg.query_count = rate(cur.query_count, old.query_count);
  avg.xact_count = rate(cur.xact_count, old.xact_count);
  avg.server_assignment_count = rate(cur.server_assignment_count, old.server_assignment_count);
  avg.bytes_received = rate(cur.bytes_received, old.bytes_received);
  avg.bytes_sent = rate(cur.bytes_sent, old.bytes_sent);
  avg.query_time = per(cur.query_time - old.query_time, queries);
  avg.xact_time = per(cur.xact_time - old.xact_time, xacts);
  avg.wait_time = per(cur.wait_time - old.wait_time, assignments);
  avg.client_parse_count = rate(cur.client_parse_count, old.client_parse_count);
  avg.server_parse_count = rate(cur.server_parse_count, old.server_parse_count);
  avg.bind_count = rate(cur.bind_count, old.bind_count);
  avg.client_login_count = rate(cur.client_login_count, old.client_login_count);
  return avg;
}

std::string version_string() {
  return std::string("PgBouncer 1.24.0 compatible (pgcohered ") + PGCOHERE_VERSION + ")";
}

ResultSet show_pools(const std::vector<PoolRow>& rows) {
  ResultSet r = result(columns(
      "ssiiiiiiiiiiiiiss",
      {"database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req",
       "cl_waiting_cancel_req", "sv_active", "sv_active_cancel", "sv_being_canceled", "sv_idle",
       "sv_used", "sv_tested", "sv_login", "maxwait", "maxwait_us", "pool_mode",
       "load_balance_hosts"}));
  for (const PoolRow& p : rows)
    r.rows.push_back({s(p.database), s(p.user), n(p.cl_active), n(p.cl_waiting),
                      n(p.cl_active_cancel_req), n(p.cl_waiting_cancel_req), n(p.sv_active),
                      n(p.sv_active_cancel), n(p.sv_being_canceled), n(p.sv_idle), n(p.sv_used),
                      n(p.sv_tested), n(p.sv_login), n(p.maxwait_us / 1000000),
                      n(p.maxwait_us % 1000000), s(p.pool_mode), s(p.load_balance_hosts)});
  return r;
}

ResultSet show_clients(const std::vector<ClientRow>& rows) {
  ResultSet r = result(socket_columns());
  for (const auto& c : rows) r.rows.push_back(socket_row(c, "C"));
  return r;
}

ResultSet show_servers(const std::vector<ServerRow>& rows) {
  ResultSet r = result(socket_columns());
  for (const auto& c : rows) r.rows.push_back(socket_row(c, "S"));
  return r;
}

ResultSet show_databases(const std::vector<DatabaseRow>& rows) {
  ResultSet r = result(columns(
      "ssissiiiissiiiiii",
      {"name", "host", "port", "database", "force_user", "pool_size", "min_pool_size",
       "reserve_pool_size", "server_lifetime", "pool_mode", "load_balance_hosts",
       "max_connections", "current_connections", "max_client_connections",
       "current_client_connections", "paused", "disabled"}));
  for (const DatabaseRow& d : rows)
    r.rows.push_back({s(d.name), s(d.host), n(d.port), s(d.database), s(d.force_user),
                      n(d.pool_size), n(d.min_pool_size), n(d.reserve_pool_size),
                      n(d.server_lifetime), s(d.pool_mode), s(d.load_balance_hosts),
                      n(d.max_connections), n(d.current_connections),
                      n(d.max_client_connections), n(d.current_client_connections),
                      n(d.paused ? 1 : 0), n(d.disabled ? 1 : 0)});
  return r;
}

ResultSet show_users(const std::vector<UserRow>& rows) {
  ResultSet r = result(columns(
      "ssssiiii", {"name", "pool_size", "reserve_pool_size", "pool_mode", "max_user_connections",
                   "current_connections", "max_user_client_connections",
                   "current_client_connections"}));
  for (const UserRow& x : rows)
    r.rows.push_back({s(x.name), padded(x.pool_size), padded(x.reserve_pool_size), s(x.pool_mode),
                      n(x.max_user_connections), n(x.current_connections),
                      n(x.max_user_client_connections), n(x.current_client_connections)});
  return r;
}

ResultSet show_stats(const std::vector<StatsRow>& rows) {
  ResultSet r = result(columns(
      "sNNNNNNNNNNNNNNNNNNNNNNNN",
      {"database", "total_server_assignment_count", "total_xact_count", "total_query_count",
       "total_received", "total_sent", "total_xact_time", "total_query_time", "total_wait_time",
       "total_client_parse_count", "total_server_parse_count", "total_bind_count",
       "total_client_login_count", "avg_server_assignment_count", "avg_xact_count",
       "avg_query_count", "avg_recv", "avg_sent", "avg_xact_time", "avg_query_time",
       "avg_wait_time", "avg_client_parse_count", "avg_server_parse_count", "avg_bind_count",
       "avg_client_login_count"}));
  for (const StatsRow& st : rows) {
    Row row{s(st.database)};
    append_counters(row, st.totals);
    append_counters(row, st.averages);
    r.rows.push_back(std::move(row));
  }
  return r;
}

// SHOW STATS_TOTALS / STATS_AVERAGES: one of the two counter sets per database; the
// averages name their last four columns avg_*, as PgBouncer does.
static ResultSet show_stats_part(const std::vector<StatsRow>& rows, StatsCounters StatsRow::*part,
                                 const std::string& prefix) {
  ResultSet r = result(columns(
      "sNNNNNNNNNNNN",
      {"database", "server_assignment_count", "xact_count", "query_count", "bytes_received", "bytes_sent",
       "xact_time", "query_time", "wait_time", "client_parse_count", "server_parse_count", "bind_count",
       "client_login_count"}));
  for (size_t i = r.columns.size() - 4; i < r.columns.size(); ++i) r.columns[i].name = prefix + r.columns[i].name;
  for (const StatsRow& st : rows) {
    Row row{s(st.database)};
    append_counters(row, st.*part);
    r.rows.push_back(std::move(row));
  }
  return r;
}

ResultSet show_stats_totals(const std::vector<StatsRow>& rows) { return show_stats_part(rows, &StatsRow::totals, ""); }

ResultSet show_stats_averages(const std::vector<StatsRow>& rows) {
  return show_stats_part(rows, &StatsRow::averages, "avg_");
}

ResultSet show_totals(const std::vector<StatsRow>& rows) {
  StatsCounters total, avg;
  for (const StatsRow& st : rows) {
    total = add(total, st.totals);
    avg = add(avg, st.averages);
  }
  ResultSet r = result(columns("sN", {"name", "value"}));
  static const char* const kNames[] = {
      "server_assignment_count", "xact_count", "query_count", "client_bytes", "server_bytes",
      "xact_time", "query_time", "wait_time", "ps_client_parse_count", "ps_server_parse_count",
      "ps_bind_count", "client_login_count"};
  for (const auto& [prefix, c] : {std::pair{"total_", &total}, std::pair{"avg_", &avg}}) {
    Row values;
    append_counters(values, *c);
    for (std::size_t i = 0; i < values.size(); ++i)
      r.rows.push_back({std::string(prefix) + kNames[i], values[i]});
  }
  return r;
}

ResultSet show_config(const std::vector<ConfigRow>& rows) {
  ResultSet r = result(columns("ssss", {"key", "value", "default", "changeable"}));
  for (const ConfigRow& c : rows)
    r.rows.push_back({s(c.key), s(c.value), s(c.default_value),
                      std::string(c.changeable ? "yes" : "no")});
  return r;
}

ResultSet show_lists(const ListsRow& l) {
  ResultSet r = result(columns("si", {"list", "items"}));
  const std::pair<const char*, std::int64_t> items[] = {
      {"databases", l.databases},       {"users", l.users},
      {"peers", l.peers},               {"pools", l.pools},
      {"peer_pools", l.peer_pools},     {"free_clients", l.free_clients},
      {"used_clients", l.used_clients}, {"login_clients", l.login_clients},
      {"free_servers", l.free_servers}, {"used_servers", l.used_servers},
      {"dns_names", l.dns_names},       {"dns_zones", l.dns_zones},
      {"dns_queries", l.dns_queries},   {"dns_pending", l.dns_pending}};
  for (const auto& [name, count] : items) r.rows.push_back({std::string(name), n(count)});
  return r;
}

ResultSet show_mem(const std::vector<MemRow>& rows) {
  ResultSet r = result(columns("siiii", {"name", "size", "used", "free", "memtotal"}));
  for (const MemRow& m : rows)
    r.rows.push_back({s(m.name), n(m.size), n(m.used), n(m.free), n(m.memtotal)});
  return r;
}

ResultSet show_cache(const std::vector<CacheRow>& rows) {
  ResultSet r = result(columns("sqqqqqqqqqqqNqqs",
                               {"database", "hits", "misses", "stores", "stale_refused", "not_stored", "bypassed",
                                "uncacheable", "redis_errors", "single_flight_hits", "bytes", "total_requests",
                                "hit_ratio", "invalidations", "evictions", "health"}));
  for (const CacheRow& c : rows) {
    std::uint64_t answered = c.hits + c.misses;
    char ratio[32];
    std::snprintf(ratio, sizeof ratio, "%.4f", answered ? static_cast<double>(c.hits) / answered : 0.0);
    r.rows.push_back({s(c.database), u(c.hits), u(c.misses), u(c.stores), u(c.stale_refused), u(c.not_stored),
                      u(c.bypassed), u(c.uncacheable), u(c.redis_errors), u(c.single_flight_hits),
                      u(c.bytes_stored), u(answered + c.bypassed + c.redis_errors), std::string(ratio),
                      u(c.invalidations), u(c.evictions), s(c.health)});
  }
  return r;
}

ResultSet show_cache_rules(const std::vector<CacheRuleRow>& rows) {
  ResultSet r = result(columns("ssqqs", {"database", "table", "relid", "ttl_ms", "by"}));
  for (const CacheRuleRow& c : rows)
    r.rows.push_back({s(c.database), s(c.table), u(c.relid), c.ttl_ms ? n(*c.ttl_ms) : std::nullopt, s(c.by)});
  return r;
}

ResultSet show_version(const std::string& version) {
  ResultSet r = result(columns("s", {"version"}));
  r.rows.push_back({version});
  return r;
}

ResultSet show_state(bool paused, bool suspended) {
  ResultSet r = result(columns("ss", {"key", "value"}));
  auto yn = [](bool b) { return std::optional<std::string>(b ? "yes" : "no"); };
  r.rows.push_back({std::string("active"), yn(!paused && !suspended)});
  r.rows.push_back({std::string("paused"), yn(paused)});
  r.rows.push_back({std::string("suspended"), yn(suspended)});
  return r;
}

ResultSet show_help() {
  ResultSet r;
  r.command_tag = "SHOW";
  r.notices.push_back(
      {"Console usage",
       "\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION\n"
       "\tSHOW PEERS|PEER_POOLS\n"
       "\tSHOW LISTS|MEM|STATE\n"
       "\tSHOW DNS_HOSTS|DNS_ZONES\n"
       "\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS\n"
       "\tRELOAD\n"
       "\tPAUSE [<db>]\n"
       "\tRESUME [<db>]\n"
       "\tKILL [<db>]\n"
       "\tSUSPEND\n"
       "\tSHUTDOWN\n"
       "\tSHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS"});
  return r;
}

ResultSet show_param(std::string_view name) {
  static const std::pair<std::string_view, const char*> kValues[] = {
      {"client_encoding", "UTF-8"},
      {"default_transaction_isolation", "read committed"},
      {"standard_conforming_strings", "on"},
      {"datestyle", "ISO"},
      {"timezone", "GMT"}};
  ResultSet r;
  r.command_tag = "SHOW";
  for (const auto& [key, value] : kValues)
    if (key == name) {
      r.columns.push_back(Column{std::string(key), oid::text, -1});
      r.rows.push_back({std::string(value)});
    }
  return r;
}

std::vector<ConfigRow> config_rows(const config::Config& config) {
  std::vector<ConfigRow> rows;
  for (const config::Setting& st : config::list_settings(config)) {
    ConfigRow row;
    row.key = st.section == "pgcohered" ? st.key : st.section + "." + st.key;
    row.value = st.secret ? "********" : st.value;
    row.default_value = st.default_value;
    row.changeable = !(st.section == "pgcohered" && config::requires_restart(st.key));
    rows.push_back(std::move(row));
  }
  return rows;
}

ResultSet build_show(Show what, const Snapshot& snap, std::string_view param) {
  switch (what) {
    case Show::help: return show_help();
    case Show::pools: return show_pools(snap.pools);
    case Show::stats: return show_stats(snap.stats);
    case Show::servers: return show_servers(snap.servers);
    case Show::clients: return show_clients(snap.clients);
    case Show::databases: return show_databases(snap.databases);
    case Show::config: return show_config(snap.config);
    case Show::lists: return show_lists(snap.lists);
    case Show::users: return show_users(snap.users);
    case Show::version: return show_version(version_string());
    case Show::mem: return show_mem(snap.mem);
    case Show::totals: return show_totals(snap.stats);
    case Show::stats_totals: return show_stats_totals(snap.stats);
    case Show::stats_averages: return show_stats_averages(snap.stats);
    case Show::state: return show_state(snap.paused, snap.suspended);
    case Show::peers: {
      ResultSet r = result(columns("isii", {"peer_id", "host", "port", "pool_size"}));
      for (const PeerRow& p : snap.peers) r.rows.push_back({n(p.peer_id), s(p.host), n(p.port), n(p.pool_size)});
      return r;
    }
    case Show::peer_pools: {
      // A forwarded cancel is one request and one connection at once; none waits (over
      // pool_size it is dropped) and none logs in.
      ResultSet r = result(columns("iiiii", {"peer_id", "cl_active_cancel_req", "cl_waiting_cancel_req",
                                             "sv_active_cancel", "sv_login"}));
      for (const PeerRow& p : snap.peers)
        r.rows.push_back({n(p.peer_id), n(p.in_flight), n(0), n(p.in_flight), n(0)});
      return r;
    }
    case Show::dns_hosts: return result(columns("sqs", {"hostname", "ttl", "addrs"}));
    case Show::dns_zones: return result(columns("sqi", {"zonename", "serial", "count"}));
    case Show::param: return show_param(param);
    case Show::cache: return show_cache(snap.cache);
    case Show::cache_rules: return show_cache_rules(snap.cache_rules);
    case Show::fds:
    case Show::sockets:
    case Show::active_sockets: return ResultSet{};
  }
  return ResultSet{};
}

}  // namespace pgcohere::admin

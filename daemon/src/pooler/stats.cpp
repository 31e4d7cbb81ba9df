// Pool numbers (see stats.h).
#include "pooler/stats.h"

#include "pooler/client_conn.h"
#include "pooler/janitor.h"
#include "pooler/pooler.h"
#include "pooler/server_conn.h"

namespace pgcohere::pooler {

namespace {
admin::PoolRow pool_row(const std::string& database, const std::string& user, const PoolEntry& e,
                        std::chrono::steady_clock::time_point now) {
  admin::PoolRow row;
  row.database = database;
  row.user = user;
  for (ClientConn* c : e.clients()) {
    if (c->waiting()) row.cl_waiting++;
    else row.cl_active++;
  }
  for (ServerConn* s : e.servers()) {
    switch (s->state()) {
      case ServerConn::State::active: row.sv_active++; break;
      case ServerConn::State::being_canceled: row.sv_being_canceled++; break;
      case ServerConn::State::idle: (s->check_due() ? row.sv_used : row.sv_idle)++; break;
      case ServerConn::State::resetting:
      case ServerConn::State::testing: row.sv_tested++; break;
      case ServerConn::State::connecting: row.sv_login++; break;
      case ServerConn::State::closed: break;
    }
  }
  if (!e.queue().waiters().empty())
    row.maxwait_us =
        std::chrono::duration_cast<std::chrono::microseconds>(now - e.queue().waiters().front()->wait_started())
            .count();
  row.pool_mode = to_string(e.mode());
  return row;
}
}  // namespace

std::vector<PoolSample> sample_pools(const Pools& pools, std::chrono::steady_clock::time_point now) {
  std::vector<PoolSample> out;
  out.reserve(pools.size());
  for (auto& [key, e] : pools) out.push_back({pool_row(key.first, key.second, *e, now), e->stats(), e->queue().limits()});
  return out;
}

admin::StatsCounters database_totals(const Pools& pools, const std::string& database) {
  admin::StatsCounters t;
  for (auto& [k, e] : pools) {
    if (k.first != database) continue;
    auto& s = e->stats();
    t.server_assignment_count += s.xact_count;
    t.xact_count += s.xact_count;
    t.query_count += s.query_count;
    t.bytes_received += s.bytes_received;
    t.bytes_sent += s.bytes_sent;
    t.wait_time += s.wait_time_us;
    t.xact_time += s.xact_time_us;
    t.query_time += s.query_time_us;
  }
  return t;
}

void expose(metrics::Exposition& out, const std::vector<PoolSample>& pools, std::size_t clients) {
  for (const PoolSample& p : pools) {
    const admin::PoolRow& r = p.row;
    metrics::Labels l{{"database", r.database}, {"user", r.user}};
    out.gauge("pgcohere_pool_cl_active", "Clients not waiting for a server connection (SHOW POOLS cl_active)", l,
              r.cl_active);
    out.gauge("pgcohere_pool_cl_waiting", "Clients waiting for a server connection (cl_waiting)", l, r.cl_waiting);
    out.gauge("pgcohere_pool_sv_active", "Server connections linked to a client (sv_active)", l, r.sv_active);
    out.gauge("pgcohere_pool_sv_idle", "Idle server connections ready for a client (sv_idle)", l, r.sv_idle);
    out.gauge("pgcohere_pool_sv_used", "Idle server connections that need server_check_query first (sv_used)", l,
              r.sv_used);
    out.gauge("pgcohere_pool_sv_tested", "Server connections running the reset or check query (sv_tested)", l,
              r.sv_tested);
    out.gauge("pgcohere_pool_sv_being_canceled",
              "Clean server connections waiting for a forwarded cancel to finish (sv_being_canceled)", l,
              r.sv_being_canceled);
    out.gauge("pgcohere_pool_sv_login", "Server connections logging in (sv_login)", l, r.sv_login);
    out.gauge("pgcohere_pool_maxwait_seconds", "How long the oldest waiting client has waited (maxwait)", l,
              static_cast<double>(r.maxwait_us) / 1e6);
    out.gauge("pgcohere_pool_size", "Server connections the pool opens for waiting clients (pool_size)", l,
              p.limits.pool_size);
    out.gauge("pgcohere_pool_reserve_size", "Extra server connections for clients that waited reserve_pool_timeout", l,
              p.limits.reserve_pool_size);
    const PoolStats& s = p.counters;
    out.counter("pgcohere_pool_server_connects_total", "Server logins attempted", l,
                static_cast<double>(s.server_connects));
    out.counter("pgcohere_pool_transactions_total", "Transactions pooled (server connection released)", l,
                static_cast<double>(s.xact_count));
    out.counter("pgcohere_pool_queries_total", "Requests answered by ReadyForQuery", l,
                static_cast<double>(s.query_count));
    out.counter("pgcohere_pool_received_bytes_total", "Bytes received from clients", l,
                static_cast<double>(s.bytes_received));
    out.counter("pgcohere_pool_sent_bytes_total", "Bytes sent to clients", l, static_cast<double>(s.bytes_sent));
    out.counter("pgcohere_pool_server_connect_errors_total", "Failed server logins", l,
                static_cast<double>(s.server_connect_errors));
    out.counter("pgcohere_pool_server_checks_total", "server_check_query runs on idle server connections", l,
                static_cast<double>(s.server_checks));
    out.counter("pgcohere_pool_server_check_failures_total",
                "server_check_query runs that failed (the connection was closed)", l,
                static_cast<double>(s.server_check_failures));
    out.counter("pgcohere_pool_wait_seconds_total", "Time clients spent waiting for a server connection", l,
                static_cast<double>(s.wait_time_us) / 1e6);
  }
  out.gauge("pgcohere_clients", "Client connections (including logins in progress)", {},
            static_cast<double>(clients));
}

void StatsAverages::roll(std::chrono::steady_clock::time_point now, const Pools& pools,
                         const config::DaemonSettings& d) {
  if (!janitor::stats_period_over(now, period_started_, d)) return;
  double period = std::chrono::duration<double>(now - period_started_).count();
  std::map<std::string, admin::StatsCounters> current;
  for (auto& [k, e] : pools) current[k.first] = database_totals(pools, k.first);
  for (auto& [db, c] : current)
    averages_[db] = admin::compute_averages(c, previous_[db], static_cast<std::uint64_t>(period * 1e6));
  previous_ = std::move(current);
  period_started_ = now;
}

admin::StatsCounters StatsAverages::of(const std::string& database) const {
  auto it = averages_.find(database);
  return it == averages_.end() ? admin::StatsCounters{} : it->second;
}

}  // namespace pgcohere::pooler

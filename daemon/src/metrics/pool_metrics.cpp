// Pool gauges and per-database counters from admin snapshot rows.
#include "metrics/pool_metrics.h"

namespace pgcohere::metrics {

void collect_pool_metrics(Exposition& e, const std::vector<admin::PoolRow>& pools,
                          const std::vector<admin::StatsRow>& stats,
                          const std::vector<admin::DatabaseRow>& databases) {
  for (const admin::PoolRow& p : pools) {
    Labels l{{"database", p.database}, {"user", p.user}};
    e.gauge("pool_client_active", "Clients linked to a server connection or idle in the pool", l, p.cl_active);
    e.gauge("pool_client_waiting", "Clients waiting for a server connection", l, p.cl_waiting);
    e.gauge("pool_server_active", "Server connections linked to a client", l, p.sv_active);
    e.gauge("pool_server_idle", "Server connections idle and ready for a client", l, p.sv_idle);
    e.gauge("pool_server_used", "Server connections idle but needing a check before reuse", l, p.sv_used);
    e.gauge("pool_server_tested", "Server connections running the reset or check query", l, p.sv_tested);
    e.gauge("pool_server_login", "Server connections logging in", l, p.sv_login);
    e.gauge("pool_maxwait_seconds", "How long the oldest waiting client has waited", l,
            static_cast<double>(p.maxwait_us) / 1e6);
  }
  for (const admin::StatsRow& s : stats) {
    Labels l{{"database", s.database}};
    const admin::StatsCounters& t = s.totals;
    e.counter("transactions_total", "Transactions pooled (SHOW STATS total_xact_count)", l,
              static_cast<double>(t.xact_count));
    e.counter("queries_total", "Queries pooled (SHOW STATS total_query_count)", l,
              static_cast<double>(t.query_count));
    e.counter("received_bytes_total", "Bytes received from clients", l, static_cast<double>(t.bytes_received));
    e.counter("sent_bytes_total", "Bytes sent to clients", l, static_cast<double>(t.bytes_sent));
    e.counter("transaction_time_seconds_total", "Time spent in transactions", l,
              static_cast<double>(t.xact_time) / 1e6);
    e.counter("query_time_seconds_total", "Time spent running queries", l,
              static_cast<double>(t.query_time) / 1e6);
    e.counter("wait_time_seconds_total", "Time clients spent waiting for a server connection", l,
              static_cast<double>(t.wait_time) / 1e6);
    e.counter("server_assignments_total", "Times a server connection was assigned to a client", l,
              static_cast<double>(t.server_assignment_count));
    e.counter("client_logins_total", "Client logins", l, static_cast<double>(t.client_login_count));
  }
  for (const admin::DatabaseRow& d : databases) {
    Labels l{{"database", d.name}};
    e.gauge("pool_paused", "1 while the database is paused (PAUSE)", l, d.paused ? 1 : 0);
    e.gauge("database_server_connections", "Server connections to the database", l, d.current_connections);
    e.gauge("database_client_connections", "Client connections to the database", l,
            d.current_client_connections);
  }
}

Histogram& queue_wait_histogram(const std::string& database) {
  return registry().histogram("db_tx_queue_wait_ms",
                              "Time a client waited for a server connection, milliseconds",
                              latency_buckets_ms(), {{"database", database}});
}

Counter& server_connect_errors(const std::string& database) {
  return registry().counter("server_connect_errors_total",
                            "Failed connection attempts to PostgreSQL", {{"database", database}});
}

}  // namespace pgcohere::metrics

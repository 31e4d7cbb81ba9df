// The pooler's Prometheus metrics, named once here so that docs/metrics.md, dashboards and
// the pool agree. The pool registers one collector that calls collect_pool_metrics with
// the same snapshot rows it gives the admin console, and updates the two hot-path
// metrics below directly.
#pragma once

#include <string>
#include <vector>

#include "admin/snapshot.h"
#include "metrics/registry.h"

namespace pgcohere::metrics {

// Per pool (database, user): pool_client_active, pool_client_waiting, pool_server_active,
// pool_server_idle, pool_server_used, pool_server_tested, pool_server_login,
// pool_maxwait_seconds. Per database (SHOW STATS totals): transactions_total,
// queries_total, received_bytes_total, sent_bytes_total, transaction_time_seconds_total,
// query_time_seconds_total, wait_time_seconds_total, server_assignments_total,
// client_logins_total. Plus pool_paused{database} from the database rows.
void collect_pool_metrics(Exposition& e, const std::vector<admin::PoolRow>& pools,
                          const std::vector<admin::StatsRow>& stats,
                          const std::vector<admin::DatabaseRow>& databases = {});

// pgcohere_db_tx_queue_wait_ms{database}: how long a client waited for a server connection,
// in milliseconds (observe when it gets one). Alert on its p95.
Histogram& queue_wait_histogram(const std::string& database);
// pgcohere_server_connect_errors_total{database}: failed connection attempts to PostgreSQL.
Counter& server_connect_errors(const std::string& database);

}  // namespace pgcohere::metrics

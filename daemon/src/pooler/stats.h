// The pooler's numbers (PgBouncer's stats.c): per-pool counters, the SHOW STATS totals
// and averages, and sample_pools(), the one collector of pool state that SHOW POOLS,
// SHOW STATS and /metrics all read, so the console and the scrape agree by construction.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "admin/snapshot.h"
#include "config/config.h"
#include "metrics/registry.h"
#include "pool/pool.h"

namespace pgcohere::pooler {

class PoolEntry;

// Counters of one pool, for SHOW STATS and /metrics (monotonic).
struct PoolStats {
  uint64_t xact_count = 0;
  uint64_t query_count = 0;
  uint64_t bytes_received = 0;  // from clients
  uint64_t bytes_sent = 0;      // to clients
  uint64_t xact_time_us = 0;
  uint64_t query_time_us = 0;
  uint64_t wait_time_us = 0;
  uint64_t server_connects = 0;  // server logins attempted (the errors' denominator)
  uint64_t server_connect_errors = 0;
  uint64_t wait_count = 0;
  uint64_t server_checks = 0;          // server_check_query runs
  uint64_t server_check_failures = 0;  // ... that closed the connection
};

// The pools by (database, server user).
using Pools = std::map<std::pair<std::string, std::string>, std::unique_ptr<PoolEntry>>;

// One pool at one moment: its SHOW POOLS row and its counters.
struct PoolSample {
  admin::PoolRow row;
  PoolStats counters;
  pool::PoolLimits limits;  // pool_size and reserve_pool_size: the utilisation's denominator
};

// Every pool, in key order; server connections are counted by state as SHOW POOLS does.
std::vector<PoolSample> sample_pools(const Pools& pools, std::chrono::steady_clock::time_point now);

// The SHOW STATS totals of one database: the sum of its pools' counters.
admin::StatsCounters database_totals(const Pools& pools, const std::string& database);

// /metrics: the samples under the exported names (docs/metrics.md), plus the number of
// client connections (logged in or not).
void expose(metrics::Exposition& out, const std::vector<PoolSample>& pools, std::size_t clients);

// SHOW STATS averages: per database, over the last complete stats_period.
class StatsAverages {
 public:
  // Starts a new period when the current one is over (janitor::stats_period_over).
  void roll(std::chrono::steady_clock::time_point now, const Pools& pools, const config::DaemonSettings& d);
  admin::StatsCounters of(const std::string& database) const;

 private:
  std::map<std::string, admin::StatsCounters> previous_;  // totals at period_started_
  std::chrono::steady_clock::time_point period_started_ = std::chrono::steady_clock::now();
  std::map<std::string, admin::StatsCounters> averages_;
};

}  // namespace pgcohere::pooler

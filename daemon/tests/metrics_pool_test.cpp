// The pool's metric names and values, from admin snapshot rows.
#include <gtest/gtest.h>

#include "metrics/pool_metrics.h"

using namespace pgcohere;

TEST(PoolMetrics, GaugesAndCountersFromSnapshots) {
  admin::PoolRow p;
  p.database = "appdb";
  p.user = "app";
  p.cl_active = 3;
  p.cl_waiting = 1;
  p.sv_idle = 2;
  p.maxwait_us = 1'500'000;
  admin::StatsRow s;
  s.database = "appdb";
  s.totals.xact_count = 42;
  s.totals.wait_time = 250'000;
  admin::DatabaseRow d;
  d.name = "appdb";
  d.paused = true;
  metrics::Exposition e;
  metrics::collect_pool_metrics(e, {p}, {s}, {d});
  std::string out = e.text();
  auto has = [&](const std::string& line) { return out.find(line) != std::string::npos; };
  EXPECT_TRUE(has("# TYPE pgcohere_pool_client_active gauge\n"));
  EXPECT_TRUE(has("pgcohere_pool_client_active{database=\"appdb\",user=\"app\"} 3\n"));
  EXPECT_TRUE(has("pgcohere_pool_client_waiting{database=\"appdb\",user=\"app\"} 1\n"));
  EXPECT_TRUE(has("pgcohere_pool_server_idle{database=\"appdb\",user=\"app\"} 2\n"));
  EXPECT_TRUE(has("pgcohere_pool_maxwait_seconds{database=\"appdb\",user=\"app\"} 1.5\n"));
  EXPECT_TRUE(has("# TYPE pgcohere_transactions_total counter\n"));
  EXPECT_TRUE(has("pgcohere_transactions_total{database=\"appdb\"} 42\n"));
  EXPECT_TRUE(has("pgcohere_wait_time_seconds_total{database=\"appdb\"} 0.25\n"));
  EXPECT_TRUE(has("pgcohere_pool_paused{database=\"appdb\"} 1\n"));
}

TEST(PoolMetrics, HotPathMetricsAreRegisteredOnce) {
  auto& h = metrics::queue_wait_histogram("appdb");
  EXPECT_EQ(&h, &metrics::queue_wait_histogram("appdb"));
  h.observe(3);
  metrics::server_connect_errors("appdb").inc();
  std::string out = metrics::registry().render();
  EXPECT_NE(out.find("pgcohere_db_tx_queue_wait_ms_bucket{database=\"appdb\",le=\"5\"}"), std::string::npos);
  EXPECT_NE(out.find("pgcohere_server_connect_errors_total{database=\"appdb\"}"), std::string::npos);
}

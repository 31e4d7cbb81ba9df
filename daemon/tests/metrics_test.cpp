// Unit tests of the metrics registry and its Prometheus text rendering.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <thread>

#include "metrics/process.h"
#include "metrics/registry.h"

using namespace pgcohere::metrics;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST(Metrics, CounterRendersWithHelpTypeAndPrefix) {
  Registry r;
  Counter& c = r.counter("queries_total", "Queries forwarded.");
  c.inc();
  c.inc(2);
  EXPECT_EQ(c.value(), 3);
  EXPECT_EQ(r.render(),
            "# HELP pgcohere_queries_total Queries forwarded.\n"
            "# TYPE pgcohere_queries_total counter\n"
            "pgcohere_queries_total 3\n");
}

TEST(Metrics, PrefixIsNotDoubled) {
  Registry r;
  Counter& a = r.counter("pgcohere_x_total", "x");
  Counter& b = r.counter("x_total", "x");
  EXPECT_EQ(&a, &b);
}

TEST(Metrics, SameNameAndLabelsReturnSameObject) {
  Registry r;
  Gauge& a = r.gauge("g", "h", {{"db", "app"}});
  Gauge& b = r.gauge("g", "h", {{"db", "app"}});
  Gauge& c = r.gauge("g", "h", {{"db", "other"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
}

TEST(Metrics, GaugeSetIncDec) {
  Registry r;
  Gauge& g = r.gauge("clients", "Clients.", {{"db", "a"}, {"user", "u"}});
  g.set(10);
  g.inc();
  g.dec(3);
  EXPECT_EQ(g.value(), 8);
  EXPECT_TRUE(contains(r.render(), "pgcohere_clients{db=\"a\",user=\"u\"} 8\n"));
}

TEST(Metrics, TypeConflictThrows) {
  Registry r;
  r.counter("m", "h");
  EXPECT_THROW(r.gauge("m", "h"), std::invalid_argument);
  r.histogram("hh", "h", {1, 2});
  EXPECT_THROW(r.histogram("hh", "h", {1, 3}, {{"a", "b"}}), std::invalid_argument);
}

TEST(Metrics, InvalidNamesThrow) {
  Registry r;
  EXPECT_THROW(r.counter("bad name", "h"), std::invalid_argument);
  EXPECT_THROW(r.counter("1abc", "h"), std::invalid_argument);
  EXPECT_THROW(r.counter("ok", "h", {{"bad-label", "v"}}), std::invalid_argument);
  EXPECT_THROW(r.counter("ok2", "h", {{"a", "1"}, {"a", "2"}}), std::invalid_argument);
  EXPECT_THROW(r.histogram("ok3", "h", {1}, {{"le", "1"}}), std::invalid_argument);
  EXPECT_THROW(r.counter("ok4", "h", {{"__reserved", "1"}}), std::invalid_argument);
}

TEST(Metrics, LabelValueAndHelpEscaping) {
  Registry r;
  r.counter("esc_total", "line1\nback\\slash \"quoted\"", {{"v", "a\"b\\c\nd"}}).inc();
  std::string out = r.render();
  EXPECT_TRUE(contains(out, "# HELP pgcohere_esc_total line1\\nback\\\\slash \"quoted\"\n"));
  EXPECT_TRUE(contains(out, "pgcohere_esc_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"));
}

TEST(Metrics, HistogramBucketsAreCumulativeWithInf) {
  Registry r;
  Histogram& h = r.histogram("wait_ms", "Wait.", {1, 5, 0.5}, {{"db", "a"}});
  h.observe(0.2);   // <= 0.5
  h.observe(0.5);   // le is inclusive
  h.observe(3);     // <= 5
  h.observe(100);   // +Inf only
  std::string out = r.render();
  EXPECT_EQ(out,
            "# HELP pgcohere_wait_ms Wait.\n"
            "# TYPE pgcohere_wait_ms histogram\n"
            "pgcohere_wait_ms_bucket{db=\"a\",le=\"0.5\"} 2\n"
            "pgcohere_wait_ms_bucket{db=\"a\",le=\"1\"} 2\n"
            "pgcohere_wait_ms_bucket{db=\"a\",le=\"5\"} 3\n"
            "pgcohere_wait_ms_bucket{db=\"a\",le=\"+Inf\"} 4\n"
            "pgcohere_wait_ms_sum{db=\"a\"} 103.7\n"
            "pgcohere_wait_ms_count{db=\"a\"} 4\n");
}

TEST(Metrics, HistogramWithoutLabels) {
  Registry r;
  r.histogram("lat", "L.", {1}).observe(2);
  std::string out = r.render();
  EXPECT_TRUE(contains(out, "pgcohere_lat_bucket{le=\"1\"} 0\n"));
  EXPECT_TRUE(contains(out, "pgcohere_lat_bucket{le=\"+Inf\"} 1\n"));
  EXPECT_TRUE(contains(out, "pgcohere_lat_count 1\n"));
}

TEST(Metrics, ValueFormatting) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(-3), "-3");
  EXPECT_EQ(format_value(0.25), "0.25");
  EXPECT_EQ(format_value(1e20), "1e+20");
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_value(std::numeric_limits<double>::quiet_NaN()), "NaN");
}

TEST(Metrics, CollectorsMergeIntoFamiliesAndCanBeRemoved) {
  Registry r;
  r.gauge("pool_cl_active", "Active clients.", {{"database", "a"}}).set(1);
  CollectorId id = r.add_collector([](Exposition& e) {
    e.gauge("pool_cl_active", "ignored help", {{"database", "b"}}, 2);
    e.counter("scrapes_total", "Scrapes.", {}, 7);
    e.counter("pool_cl_active", "wrong type is dropped", {}, 9);
  });
  std::string out = r.render();
  EXPECT_TRUE(contains(out,
                       "# HELP pgcohere_pool_cl_active Active clients.\n"
                       "# TYPE pgcohere_pool_cl_active gauge\n"
                       "pgcohere_pool_cl_active{database=\"a\"} 1\n"
                       "pgcohere_pool_cl_active{database=\"b\"} 2\n"));
  EXPECT_TRUE(contains(out, "pgcohere_scrapes_total 7\n"));
  EXPECT_FALSE(contains(out, " 9\n"));
  r.remove_collector(id);
  EXPECT_FALSE(contains(r.render(), "scrapes_total"));
}

TEST(Metrics, ThrowingCollectorDoesNotBreakScrape) {
  Registry r;
  r.counter("a_total", "A.").inc();
  r.add_collector([](Exposition&) { throw std::runtime_error("boom"); });
  EXPECT_TRUE(contains(r.render(), "pgcohere_a_total 1\n"));
}

TEST(Metrics, CollectorHistogram) {
  Registry r;
  Histogram h({1, 2});
  h.observe(1.5);
  r.add_collector([&](Exposition& e) { e.histogram("x", "X.", {{"p", "q"}}, h.snapshot()); });
  std::string out = r.render();
  EXPECT_TRUE(contains(out, "# TYPE pgcohere_x histogram\n"));
  EXPECT_TRUE(contains(out, "pgcohere_x_bucket{p=\"q\",le=\"2\"} 1\n"));
  EXPECT_TRUE(contains(out, "pgcohere_x_sum{p=\"q\"} 1.5\n"));
}

TEST(Metrics, ConcurrentIncrementsAreNotLost) {
  Registry r;
  Counter& c = r.counter("c_total", "C.");
  Histogram& h = r.histogram("h", "H.", {10});
  auto work = [&] {
    for (int i = 0; i < 100000; ++i) {
      c.inc();
      h.observe(1);
    }
  };
  std::thread t1(work), t2(work);
  t1.join();
  t2.join();
  EXPECT_EQ(c.value(), 200000);
  EXPECT_EQ(h.snapshot().count, 200000u);
}

TEST(Metrics, BucketHelpers) {
  EXPECT_EQ(exponential_buckets(1, 2, 4), (std::vector<double>{1, 2, 4, 8}));
  EXPECT_EQ(linear_buckets(0, 5, 3), (std::vector<double>{0, 5, 10}));
  EXPECT_THROW(exponential_buckets(0, 2, 3), std::invalid_argument);
  EXPECT_FALSE(latency_buckets_ms().empty());
}

TEST(Metrics, RoundBucketsAreTenShortDecimalsPerDecade) {
  std::vector<double> b = round_buckets(0.1, 10);
  EXPECT_EQ(b.size(), 21u);
  EXPECT_EQ(b.front(), 0.1);
  EXPECT_EQ(b.back(), 10);
  std::vector<std::string> printed;
  for (double v : b) printed.push_back(format_value(v));
  EXPECT_EQ(printed, (std::vector<std::string>{"0.1", "0.12", "0.15", "0.2", "0.25", "0.3", "0.4", "0.5", "0.6", "0.8",
                                               "1", "1.2", "1.5", "2", "2.5", "3", "4", "5", "6", "8", "10"}));
  for (double v : round_buckets(0.001, 100000)) EXPECT_LE(format_value(v).size(), 6u) << format_value(v);
  EXPECT_THROW(round_buckets(0, 10), std::invalid_argument);
  EXPECT_THROW(round_buckets(10, 10), std::invalid_argument);
}

TEST(Metrics, LatencyBucketsHaveTheAlertThresholdsAsBounds) {
  std::vector<double> b = latency_buckets_ms();
  EXPECT_NE(std::find(b.begin(), b.end(), 200.0), b.end());
  EXPECT_NE(std::find(b.begin(), b.end(), 1000.0), b.end());
}

TEST(Metrics, GlobalRegistryIsShared) { EXPECT_EQ(&registry(), &registry()); }

TEST(ProcessMetrics, ReadFromProc) {
  std::vector<char> touch(8 << 20, 1);  // some resident memory
  Exposition e;
  collect_process_metrics(e);
  std::string out = e.text();
  for (const char* name : {"pgcohere_process_cpu_seconds_total ", "pgcohere_process_resident_memory_bytes ",
                           "pgcohere_process_open_fds ", "pgcohere_process_max_fds ",
                           "pgcohere_process_start_time_seconds ", "pgcohere_process_threads "})
    EXPECT_TRUE(contains(out, name)) << name << "\n" << out;
  auto value = [&](const std::string& name) {
    auto pos = out.find("\n" + name + " ");
    return pos == std::string::npos ? -1.0 : std::stod(out.substr(pos + name.size() + 2));
  };
  EXPECT_GT(value("pgcohere_process_resident_memory_bytes"), 8e6);
  EXPECT_GT(value("pgcohere_process_open_fds"), 2);
  EXPECT_GT(value("pgcohere_process_start_time_seconds"), 1.6e9);
  EXPECT_GE(value("pgcohere_process_threads"), 1);
  EXPECT_EQ(touch[0], 1);
}

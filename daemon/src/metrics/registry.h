// Prometheus metrics: counters, gauges and histograms updated with relaxed atomics on hot
// paths, plus scrape-time collectors, rendered in the text exposition format 0.0.4.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgcohere::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Every metric name carries this prefix; the registry adds it when a name lacks it.
inline constexpr std::string_view kPrefix = "pgcohere_";

enum class Type { counter, gauge, histogram };

class Counter {
 public:
  void inc(double amount = 1) noexcept { value_.fetch_add(amount, std::memory_order_relaxed); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void set(double value) noexcept { value_.store(value, std::memory_order_relaxed); }
  void inc(double amount = 1) noexcept { value_.fetch_add(amount, std::memory_order_relaxed); }
  void dec(double amount = 1) noexcept { value_.fetch_sub(amount, std::memory_order_relaxed); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A consistent-enough copy of a histogram for rendering: `counts` are cumulative and have
// one entry per bound plus a last one for +Inf (equal to `count`).
struct HistogramSnapshot {
  std::vector<double> bounds;
  std::vector<std::uint64_t> counts;
  double sum = 0;
  std::uint64_t count = 0;
};

class Histogram {
 public:
  // `bounds` are the finite upper bounds (le); they are sorted and deduplicated, and +Inf
  // is always implied.
  explicit Histogram(std::vector<double> bounds);
  void observe(double value) noexcept;
  HistogramSnapshot snapshot() const;
  const std::vector<double>& bounds() const noexcept { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1, not cumulative
  std::atomic<double> sum_{0};
};

// Upper bounds start, start*factor, ... (count of them).
std::vector<double> exponential_buckets(double start, double factor, std::size_t count);
// Upper bounds start, start+width, ... (count of them).
std::vector<double> linear_buckets(double start, double width, std::size_t count);
// Milliseconds from 0.1 ms to 10 s in 1-2-5 steps: a sensible default for waits and
// latencies, with the alert thresholds (200 ms, 1 s) as exact bounds.
std::vector<double> latency_buckets_ms();
// Ten round bounds per decade (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten)
// from `lo` to `hi`, both powers of ten: fine enough for quantiles of latencies, and each
// `le` label prints as a short decimal (not 0.17279999999999998). Throws
// std::invalid_argument unless 0 < lo < hi.
std::vector<double> round_buckets(double lo, double hi);

// What a collector writes into at scrape time. Samples with the same name are grouped into
// one family in the output, whatever the order in which collectors emit them.
class Exposition {
 public:
  void counter(std::string_view name, std::string_view help, const Labels& labels, double value);
  void gauge(std::string_view name, std::string_view help, const Labels& labels, double value);
  void histogram(std::string_view name, std::string_view help, const Labels& labels,
                 const HistogramSnapshot& snapshot);
  std::string text() const;

 private:
  struct Family {
    std::string help;
    Type type = Type::gauge;
    std::string samples;  // rendered sample lines
  };
  Family& family(std::string_view name, std::string_view help, Type type);
  std::map<std::string, Family> families_;
};

using Collector = std::function<void(Exposition&)>;
using CollectorId = std::uint64_t;

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Returns the metric for (name, labels), creating it on first use. The reference stays
  // valid for the registry's lifetime: take it once, keep it. Throws std::invalid_argument
  // for a malformed name or label, or when the name is already used with another type
  // (or, for histograms, other buckets).
  Counter& counter(std::string_view name, std::string_view help, Labels labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, Labels labels = {});
  Histogram& histogram(std::string_view name, std::string_view help, std::vector<double> buckets,
                       Labels labels = {});

  // For values computed when scraped (pool sizes). Collectors run on the scraping thread;
  // once remove_collector returns, that collector is not running and will not run again.
  CollectorId add_collector(Collector collector);
  void remove_collector(CollectorId id);

  std::string render() const;

 private:
  struct Family {
    std::string help;
    Type type;
    std::vector<double> bounds;  // histograms only
    std::map<Labels, std::unique_ptr<Counter>> counters;
    std::map<Labels, std::unique_ptr<Gauge>> gauges;
    std::map<Labels, std::unique_ptr<Histogram>> histograms;
  };
  Family& family(std::string_view name, std::string_view help, Type type, const Labels& labels);

  mutable std::mutex mutex_;  // families_
  std::map<std::string, Family> families_;
  mutable std::mutex collectors_mutex_;  // collectors_, held while they run
  std::map<CollectorId, Collector> collectors_;
  CollectorId next_collector_ = 1;
};

// The process-wide registry that /metrics serves.
Registry& registry();

// Text-format helpers, exposed for tests and for other renderers.
std::string prefixed_name(std::string_view name);
std::string escape_label_value(std::string_view value);
std::string escape_help(std::string_view help);
std::string format_value(double value);
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace pgcohere::metrics

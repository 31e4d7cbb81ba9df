// Metric storage and Prometheus text format 0.0.4 rendering.
#include "metrics/registry.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

#include "util/log.h"

namespace pgcohere::metrics {

namespace {

bool valid_metric_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

bool valid_label_name(std::string_view name) {
  if (name.empty() || name.substr(0, 2) == "__") return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

bool valid_labels(const Labels& labels, bool histogram) {
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (!valid_label_name(labels[i].first)) return false;
    if (histogram && labels[i].first == "le") return false;
    for (std::size_t j = 0; j < i; ++j)
      if (labels[j].first == labels[i].first) return false;
  }
  return true;
}

std::string_view type_name(Type type) {
  switch (type) {
    case Type::counter: return "counter";
    case Type::gauge: return "gauge";
    case Type::histogram: return "histogram";
  }
  return "untyped";
}

// `name{a="x",b="y"} value\n`; `extra` is appended as the last label (histogram le).
void append_sample(std::string& out, std::string_view name, const Labels& labels,
                   const std::pair<std::string_view, std::string>* extra, double value) {
  out += name;
  if (!labels.empty() || extra) {
    out += '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first) out += ',';
      first = false;
      out += k;
      out += "=\"";
      out += escape_label_value(v);
      out += '"';
    }
    if (extra) {
      if (!first) out += ',';
      out += extra->first;
      out += "=\"";
      out += extra->second;
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  out += format_value(value);
  out += '\n';
}

std::vector<double> normalized_bounds(std::vector<double> bounds) {
  std::erase_if(bounds, [](double b) { return std::isnan(b) || std::isinf(b); });
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  return bounds;
}

}  // namespace

std::string prefixed_name(std::string_view name) {
  if (name.substr(0, kPrefix.size()) == kPrefix) return std::string(name);
  std::string out(kPrefix);
  out += name;
  return out;
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (value == std::trunc(value) && std::fabs(value) < 1e15) {
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(value));
    return std::string(buf, r.ptr);
  }
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, r.ptr);
}

// ---- Histogram

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(normalized_bounds(std::move(bounds))),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {}

void Histogram::observe(double value) noexcept {
  // Few buckets: a linear scan beats a binary search and stays branch-predictable.
  std::size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

HistogramSnapshot Histogram::snapshot() const {
  HistogramSnapshot s;
  s.bounds = bounds_;
  s.counts.resize(bounds_.size() + 1);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    s.counts[i] = total;
  }
  s.count = total;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> exponential_buckets(double start, double factor, std::size_t count) {
  if (start <= 0 || factor <= 1) throw std::invalid_argument("exponential_buckets: bad start/factor");
  std::vector<double> out;
  double b = start;
  for (std::size_t i = 0; i < count; ++i, b *= factor) out.push_back(b);
  return out;
}

std::vector<double> linear_buckets(double start, double width, std::size_t count) {
  if (width <= 0) throw std::invalid_argument("linear_buckets: width must be positive");
  std::vector<double> out;
  for (std::size_t i = 0; i < count; ++i) out.push_back(start + width * static_cast<double>(i));
  return out;
}

std::vector<double> latency_buckets_ms() {
  return {0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000};
}

std::vector<double> round_buckets(double lo, double hi) {
  if (!(lo > 0) || !(hi > lo)) throw std::invalid_argument("round_buckets: need 0 < lo < hi");
  // Mantissas in tenths, so that every bound is an integer divided or multiplied by a power
  // of ten: one correctly rounded operation on exact integers, whose shortest decimal form
  // is the round number itself.
  static constexpr int kTenths[] = {10, 12, 15, 20, 25, 30, 40, 50, 60, 80};
  std::vector<double> out;
  int exp = static_cast<int>(std::floor(std::log10(lo))) - 1;
  for (;; ++exp) {
    double scale = std::pow(10.0, std::abs(exp));  // exact for the exponents used here
    for (int m : kTenths) {
      double b = exp < 0 ? m / scale : m * scale;
      if (b < lo * (1 - 1e-9)) continue;
      if (b > hi * (1 + 1e-9)) return out;
      out.push_back(b);
    }
  }
}

// ---- Exposition

Exposition::Family& Exposition::family(std::string_view name, std::string_view help, Type type) {
  auto [it, inserted] = families_.try_emplace(prefixed_name(name));
  if (inserted) {
    it->second.help = std::string(help);
    it->second.type = type;
  }
  return it->second;
}

void Exposition::counter(std::string_view name, std::string_view help, const Labels& labels,
                         double value) {
  if (!valid_metric_name(name) || !valid_labels(labels, false)) return;
  Family& f = family(name, help, Type::counter);
  if (f.type != Type::counter) return;  // a name keeps its first type, or the output is invalid
  append_sample(f.samples, prefixed_name(name), labels, nullptr, value);
}

void Exposition::gauge(std::string_view name, std::string_view help, const Labels& labels,
                       double value) {
  if (!valid_metric_name(name) || !valid_labels(labels, false)) return;
  Family& f = family(name, help, Type::gauge);
  if (f.type != Type::gauge) return;
  append_sample(f.samples, prefixed_name(name), labels, nullptr, value);
}

void Exposition::histogram(std::string_view name, std::string_view help, const Labels& labels,
                           const HistogramSnapshot& s) {
  if (!valid_metric_name(name) || !valid_labels(labels, true)) return;
  if (s.counts.size() != s.bounds.size() + 1) return;
  Family& f = family(name, help, Type::histogram);
  if (f.type != Type::histogram) return;
  const std::string base = prefixed_name(name);
  const std::string bucket = base + "_bucket";
  for (std::size_t i = 0; i <= s.bounds.size(); ++i) {
    std::pair<std::string_view, std::string> le{
        "le", i < s.bounds.size() ? format_value(s.bounds[i]) : std::string("+Inf")};
    append_sample(f.samples, bucket, labels, &le, static_cast<double>(s.counts[i]));
  }
  append_sample(f.samples, base + "_sum", labels, nullptr, s.sum);
  append_sample(f.samples, base + "_count", labels, nullptr, static_cast<double>(s.count));
}

std::string Exposition::text() const {
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += escape_help(f.help);
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type_name(f.type);
    out += '\n';
    out += f.samples;
  }
  return out;
}

// ---- Registry

Registry::Family& Registry::family(std::string_view name, std::string_view help, Type type,
                                   const Labels& labels) {
  if (!valid_metric_name(name))
    throw std::invalid_argument("metrics: invalid metric name '" + std::string(name) + "'");
  if (!valid_labels(labels, type == Type::histogram))
    throw std::invalid_argument("metrics: invalid or duplicate label name for '" +
                                std::string(name) + "'");
  auto [it, inserted] = families_.try_emplace(prefixed_name(name));
  Family& f = it->second;
  if (inserted) {
    f.help = std::string(help);
    f.type = type;
  } else if (f.type != type) {
    throw std::invalid_argument("metrics: '" + it->first + "' already registered as " +
                                std::string(type_name(f.type)));
  }
  return f;
}

Counter& Registry::counter(std::string_view name, std::string_view help, Labels labels) {
  std::lock_guard lock(mutex_);
  Family& f = family(name, help, Type::counter, labels);
  auto& slot = f.counters[std::move(labels)];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Registry::gauge(std::string_view name, std::string_view help, Labels labels) {
  std::lock_guard lock(mutex_);
  Family& f = family(name, help, Type::gauge, labels);
  auto& slot = f.gauges[std::move(labels)];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& Registry::histogram(std::string_view name, std::string_view help,
                               std::vector<double> buckets, Labels labels) {
  std::lock_guard lock(mutex_);
  bool fresh = families_.find(prefixed_name(name)) == families_.end();
  Family& f = family(name, help, Type::histogram, labels);
  std::vector<double> bounds = normalized_bounds(std::move(buckets));
  if (fresh) {
    f.bounds = bounds;
  } else if (f.bounds != bounds) {
    throw std::invalid_argument("metrics: '" + prefixed_name(name) +
                                "' already registered with other buckets");
  }
  auto& slot = f.histograms[std::move(labels)];
  if (!slot) slot = std::make_unique<Histogram>(f.bounds);
  return *slot;
}

CollectorId Registry::add_collector(Collector collector) {
  std::lock_guard lock(collectors_mutex_);
  CollectorId id = next_collector_++;
  collectors_.emplace(id, std::move(collector));
  return id;
}

void Registry::remove_collector(CollectorId id) {
  std::lock_guard lock(collectors_mutex_);
  collectors_.erase(id);
}

std::string Registry::render() const {
  Exposition exp;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, f] : families_) {
      for (const auto& [labels, c] : f.counters) exp.counter(name, f.help, labels, c->value());
      for (const auto& [labels, g] : f.gauges) exp.gauge(name, f.help, labels, g->value());
      for (const auto& [labels, h] : f.histograms)
        exp.histogram(name, f.help, labels, h->snapshot());
    }
  }
  {
    std::lock_guard lock(collectors_mutex_);
    for (const auto& [id, collect] : collectors_) {
      try {
        collect(exp);
      } catch (const std::exception& e) {
        PGC_LOG_WARN << "metrics: collector " << id << " failed: " << e.what();
      }
    }
  }
  return exp.text();
}

Registry& registry() {
  static Registry instance;
  return instance;
}

}  // namespace pgcohere::metrics

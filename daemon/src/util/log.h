// Logging to stderr (journald adds its own timestamps under systemd), one line per record.
// Never log passwords or secrets.
#pragma once

#include <sstream>
#include <string_view>

namespace pgcohere::log {

enum class Level { debug = 0, info = 1, warning = 2, error = 3 };

void set_min_level(Level level);
bool enabled(Level level);

// Collects one record and writes it, whole, when it goes out of scope.
class Record {
 public:
  explicit Record(Level level) : level_(level) {}
  Record(const Record&) = delete;
  Record& operator=(const Record&) = delete;
  ~Record();
  template <typename T>
  Record& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  Level level_;
  std::ostringstream stream_;
};

}  // namespace pgcohere::log

#define PGC_LOG(level) \
  if (!::pgcohere::log::enabled(level)) {} else ::pgcohere::log::Record(level)
#define PGC_LOG_DEBUG PGC_LOG(::pgcohere::log::Level::debug)
#define PGC_LOG_INFO PGC_LOG(::pgcohere::log::Level::info)
#define PGC_LOG_WARN PGC_LOG(::pgcohere::log::Level::warning)
#define PGC_LOG_ERROR PGC_LOG(::pgcohere::log::Level::error)

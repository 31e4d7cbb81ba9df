// Log records go to stderr in one write each, so concurrent records never interleave.
#include "util/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

namespace pgcohere::log {
namespace {
std::atomic<int> min_level{static_cast<int>(Level::info)};

const char* level_name(Level level) {
  switch (level) {
    case Level::debug: return "DEBUG";
    case Level::info: return "LOG";
    case Level::warning: return "WARNING";
    case Level::error: return "ERROR";
  }
  return "LOG";
}
}  // namespace

void set_min_level(Level level) { min_level = static_cast<int>(level); }
bool enabled(Level level) { return static_cast<int>(level) >= min_level.load(std::memory_order_relaxed); }

Record::~Record() {
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t secs = system_clock::to_time_t(now);
  auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[64];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02d %02d:%02d:%02d.%03d UTC", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(millis));
  std::string line = std::string(stamp) + " [" + std::to_string(getpid()) + "] " + level_name(level_) +
                     " " + stream_.str() + "\n";
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace pgcohere::log

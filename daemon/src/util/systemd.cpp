// sd_notify wrappers and the watchdog timer.
#include "util/systemd.h"

#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include <string>

#include "util/log.h"

namespace pgcohere::util::systemd {

namespace {
bool notify(const std::string& state) { return sd_notify(0, state.c_str()) > 0; }

std::uint64_t monotonic_usec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}
}  // namespace

bool notify_ready() {
  return notify("READY=1\nSTATUS=ready\nMAINPID=" + std::to_string(getpid()));
}

bool notify_reloading() {
  return notify("RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=" + std::to_string(monotonic_usec()));
}

bool notify_stopping() { return notify("STOPPING=1\nSTATUS=stopping"); }

bool notify_watchdog() { return notify("WATCHDOG=1"); }

bool notify_status(std::string_view status) { return notify("STATUS=" + std::string(status)); }

std::optional<std::chrono::microseconds> watchdog_interval() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) return std::chrono::microseconds(usec);
  return std::nullopt;
}

void WatchdogService::start() {
  auto interval = watchdog_interval();
  if (!interval) return;
  period_ = *interval / 2;
  PGC_LOG_INFO << "systemd watchdog: keep-alive every " << period_.count() / 1000 << " ms";
  notify_watchdog();
  arm();
}

void WatchdogService::stop() {
  stopped_ = true;
  timer_.cancel();
}

void WatchdogService::arm() {
  timer_.expires_after(period_);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    notify_watchdog();
    arm();
  });
}

}  // namespace pgcohere::util::systemd

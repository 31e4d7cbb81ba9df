// systemd integration (Type=notify): readiness, reload and stop notifications, and the
// watchdog keep-alive. Every call is a no-op returning false outside systemd.
#pragma once

#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <optional>
#include <string_view>

#include "app/service.h"

namespace pgcohere::util::systemd {

bool notify_ready();      // READY=1, with STATUS= and MAINPID=
bool notify_reloading();  // RELOADING=1 with MONOTONIC_USEC= (systemd >= 253 wants it)
bool notify_stopping();   // STOPPING=1
bool notify_watchdog();   // WATCHDOG=1
bool notify_status(std::string_view status);

// The WatchdogSec= interval if systemd expects keep-alives from this process.
std::optional<std::chrono::microseconds> watchdog_interval();

// Sends WATCHDOG=1 at half the interval from the daemon's own io_context, so that a
// stalled event loop stops the keep-alives and systemd restarts the daemon.
class WatchdogService : public app::Service {
 public:
  explicit WatchdogService(boost::asio::io_context& io) : timer_(io) {}
  const char* name() const override { return "systemd watchdog"; }
  void start() override;
  void stop() override;

 private:
  void arm();
  boost::asio::steady_timer timer_;
  std::chrono::microseconds period_{0};
  bool stopped_ = false;
};

}  // namespace pgcohere::util::systemd

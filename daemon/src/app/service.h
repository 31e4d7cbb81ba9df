// What every long-lived part of the daemon (pooler, invalidation consumer, /metrics)
// looks like to the application: started once, told about reloads, stopped once.
#pragma once

#include "config/config.h"

namespace pgcohere::app {

class Service {
 public:
  virtual ~Service() = default;
  virtual const char* name() const = 0;
  virtual void start() = 0;
  // Stop accepting work and let the io_context run dry; called once, on SIGINT/SIGTERM.
  virtual void stop() = 0;
  // A new, already validated configuration (SIGHUP or admin RELOAD).
  virtual void reload(const config::Config&) {}
};

}  // namespace pgcohere::app

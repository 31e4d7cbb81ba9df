// What a service may ask of the application as a whole: the admin console's RELOAD and
// SHUTDOWN go through here, the same path as SIGHUP and SIGTERM, not through signals.
#pragma once

#include <string>

namespace pgcohere::app {

class Control {
 public:
  virtual ~Control() = default;
  // Re-reads and validates the configuration file and hands it to every service;
  // returns "" or the error (the running configuration then stays).
  virtual std::string reload() = 0;
  // The console's SET: one [pgcohered] key of the running configuration changed and handed
  // to every service as a reload would (the file is not read; the next RELOAD reads it
  // again). Returns "" or the error; on error nothing changes.
  virtual std::string set(const std::string& key, const std::string& value) = 0;
  // Stops every service; the io_context then runs dry and the process exits.
  virtual void shutdown() = 0;
};

}  // namespace pgcohere::app

// The interface through which the admin console reads the pooler (snapshots for SHOW)
// and acts on it (PAUSE, RELOAD, KILL, ...): the console knows nothing else of the pool.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "admin/command.h"
#include "admin/snapshot.h"

namespace pgcohere::admin {

// Implemented by the pooler (pooler/admin.cpp). Commands that take time (PAUSE
// waits for server connections to be released) report through `done` with "" on success
// or the error text for the client; `done` may be called before the method returns or
// later, on the same io_context.
class ConsoleTarget {
 public:
  using Done = std::function<void(std::string error)>;
  virtual ~ConsoleTarget() = default;
  // Fill at least what `what` needs; the rest may stay empty.
  virtual Snapshot snapshot(Show what) = 0;
  virtual void pause(const std::string& database, Done done) = 0;   // "" = all
  virtual void resume(const std::string& database, Done done) = 0;  // "" = all
  virtual void reload(Done done) = 0;
  virtual void shutdown(const std::string& mode, Done done) = 0;  // "", WAIT_FOR_SERVERS, WAIT_FOR_CLIENTS
  virtual void kill(const std::string& database, Done done) = 0;  // "" = all
  virtual void suspend(Done done) { done("SUSPEND is not supported by pgcohered"); }
  virtual void kill_client(std::int64_t id, Done done) { (void)id; done("KILL_CLIENT is not supported by pgcohered"); }
  virtual void disable(const std::string& database, Done done) { (void)database; done("DISABLE is not supported by pgcohered"); }
  virtual void enable(const std::string& database, Done done) { (void)database; done("ENABLE is not supported by pgcohered"); }
  virtual void reconnect(const std::string& database, Done done) { (void)database; done("RECONNECT is not supported by pgcohered"); }
  virtual void wait_close(const std::string& database, Done done) { (void)database; done("WAIT_CLOSE is not supported by pgcohered"); }
  // CACHE DELETE: `what` is key, pattern or table; `done` gets the entries removed or an error.
  using CountDone = std::function<void(std::int64_t count, std::string error)>;
  virtual void cache_delete(const std::string& what, const std::string& value, CountDone done) {
    (void)what;
    (void)value;
    done(0, "the query cache is not enabled ([cache] enabled = 1)");
  }
  virtual void set(const std::string& key, const std::string& value, Done done) {
    (void)key;
    (void)value;
    done("SET is not supported by pgcohered; edit the configuration file and RELOAD");
  }
};

}  // namespace pgcohere::admin

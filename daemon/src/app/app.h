// The daemon as a whole: one io_context, its services, signals (SIGTERM stop, SIGINT stop
// once the clients have left, SIGHUP reload) and systemd readiness.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <memory>
#include <string>
#include <vector>

#include "app/control.h"
#include "app/service.h"
#include "config/config.h"

namespace pgcohere::pooler {
class Pooler;
}

namespace pgcohere::app {

class App : public Control {
 public:
  explicit App(config::Config config);
  App(const App&) = delete;
  App& operator=(const App&) = delete;
  ~App();

  // Runs until stopped; returns the process exit code.
  int run();
  // Re-reads the config file; on error the old configuration stays in force.
  // Returns the error text, or "" on success.
  std::string reload() override;
  std::string set(const std::string& key, const std::string& value) override;
  void shutdown() override;

  boost::asio::io_context& io() { return io_; }
  const config::Config& config() const { return config_; }

 private:
  void wait_for_stop();
  void wait_for_reload();
  void wait_for_drain();

  // One thread runs the loop, so the reactor's locks are dead weight on every socket
  // operation (UNSAFE_IO keeps the scheduler's: async_resolve completes from Asio's
  // resolver thread through it).
  boost::asio::io_context io_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  boost::asio::signal_set stop_signals_;
  boost::asio::signal_set reload_signal_;
  boost::asio::signal_set drain_signal_;
  pooler::Pooler* pooler_ = nullptr;
  config::Config config_;
  std::vector<std::shared_ptr<Service>> services_;  // shared: some are owned that way (CacheService)
  bool stopping_ = false;
};

// Human-readable list of what differs between two configurations ("" when nothing).
std::string describe_changes(const config::Config& before, const config::Config& after);

}  // namespace pgcohere::app

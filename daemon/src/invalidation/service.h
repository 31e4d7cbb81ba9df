// The invalidation service: one consumer per configured database, one purger over two Redis
// connections (exact keys; pattern scans), wired to the app's io_context.
#pragma once

#include <boost/asio/io_context.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "app/service.h"
#include "config/config.h"
#include "invalidation/consumer.h"
#include "invalidation/journal.h"
#include "invalidation/pattern_index.h"
#include "invalidation/purger.h"
#include "invalidation/redis_memory.h"
#include "metrics/registry.h"
#include "redis/backend.h"

namespace pgcohere::invalidation {

class InvalidationService : public app::Service {
 public:
  // Throws std::runtime_error when the secret file cannot be read or the Redis url is bad.
  InvalidationService(boost::asio::io_context& io, const config::Config& config);
  ~InvalidationService() override;

  const char* name() const override { return "invalidation"; }
  void start() override;
  void stop() override;
  void reload(const config::Config& config) override;

  // Called when the extension says a cache policy changed (the query cache reloads).
  void on_cache_policy_change(std::function<void(const std::string& database, std::uint32_t relid)> f) {
    settings_.on_cache_policy_change = std::move(f);
  }
  // Whether the configuration asks for this service at all.
  static bool wanted(const config::Config& config);

 private:
  void on_redis_ready();
  void check_backlog();
  void poll_redis_memory();
  void replay_journal();

  boost::asio::io_context& io_;
  ConsumerSettings settings_;
  std::size_t max_backlog_;
  std::shared_ptr<redis::Backend> backend_;
  std::shared_ptr<PatternIndex> index_;
  std::shared_ptr<Purger> purger_;
  std::unique_ptr<Journal> journal_;
  std::vector<std::shared_ptr<DatabaseConsumer>> consumers_;
  bool overflowed_ = false;  // work was dropped while Redis was down: resync when it is back
  metrics::CollectorId collector_ = 0;
  boost::asio::steady_timer backlog_timer_;
  int backlog_checks_ = 0;  // ticks since Redis's memory was last read
  // Written by the INFO reply, which holds it weakly: a reply after the service is gone
  // writes nothing (the console's pending reply follows the same shape).
  std::shared_ptr<std::optional<RedisMemory>> redis_memory_ = std::make_shared<std::optional<RedisMemory>>();
};

// Reads and trims the shared secret (throws std::runtime_error with the path on failure).
std::string read_secret_file(const std::string& path);

}  // namespace pgcohere::invalidation

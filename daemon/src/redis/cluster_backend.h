// Redis Cluster: the slot map comes from CLUSTER SLOTS, keys go to the primary that owns
// their slot (multi-key UNLINKs are split by slot), MOVED updates the map and retries, ASK
// retries once on the importing node after ASKING, and pattern scans run on every primary.
// Owned by a std::shared_ptr (make_backend): replies and timers hold a weak_ptr to it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "redis/backend.h"
#include "redis/slot_map.h"
#include "redis/url.h"

namespace pgcohere::redis {

class ClusterBackend : public Backend, public std::enable_shared_from_this<ClusterBackend> {
 public:
  ClusterBackend(boost::asio::io_context& io, std::vector<Endpoint> seeds, Timeouts timeouts = {});
  ~ClusterBackend() override;
  // Throws std::logic_error if the backend is not owned by a std::shared_ptr.
  void start() override;
  void stop() override;
  bool ready() const override;
  void on_ready(std::function<void()> handler) override { ready_handler_ = std::move(handler); }
  void unlink(std::vector<std::string> keys, bool bulk, Callback done) override;
  void keyed(std::vector<std::string> argv, std::size_t key_index, Callback done) override;
  std::vector<std::string> shards() const override { return slots_.primaries(); }
  std::uint64_t topology_version() const override { return topology_; }
  int last_slot_of(const std::string& shard) const override;
  std::string owner_of(int slot) const override;
  void scan(const std::string& shard, std::vector<std::string> argv, Callback done) override;
  std::string describe() const override;

  // Counters for tests and metrics.
  std::uint64_t moved_redirects() const override { return moved_; }
  std::uint64_t ask_redirects() const override { return ask_; }

 private:
  struct Node {
    std::shared_ptr<AsyncClient> key;
    std::shared_ptr<AsyncClient> bulk;
  };
  Node& node(const std::string& addr);
  void refresh();
  void schedule_refresh(std::chrono::milliseconds delay);
  void apply_slots(const Reply& reply, const std::string& via_host);
  void route(int slot, std::vector<std::string> argv, bool bulk, int attempt, std::string ask_addr,
             Callback done);
  void notify_ready();

  boost::asio::io_context& io_;
  std::vector<Endpoint> seeds_;
  Timeouts timeouts_;
  std::map<std::string, Node> nodes_;     // "host:port" -> connections
  SlotMap slots_;
  bool have_map_ = false;
  bool refreshing_ = false;
  bool stopping_ = true;
  std::uint64_t topology_ = 0;
  std::uint64_t moved_ = 0, ask_ = 0;
  boost::asio::steady_timer refresh_timer_;
  std::function<void()> ready_handler_;
};

}  // namespace pgcohere::redis

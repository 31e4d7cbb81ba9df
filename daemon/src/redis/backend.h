// Where the purger's commands go: one Redis server, or a Redis Cluster whose keys are
// routed by hash slot. The purger only says what to do; a backend knows where.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "redis/async_client.h"
#include "redis/reply.h"

namespace pgcohere::redis {

struct Timeouts {
  std::chrono::milliseconds connect{1000};
  std::chrono::milliseconds command{1000};
};

class Backend {
 public:
  using Callback = std::function<void(Reply)>;
  virtual ~Backend() = default;

  virtual void start() = 0;
  virtual void stop() = 0;
  // Every node needed for work is connected (and, for a cluster, the slot map is known).
  virtual bool ready() const = 0;
  // Called (posted) whenever the backend may have become ready again.
  virtual void on_ready(std::function<void()> handler) = 0;

  // UNLINK `keys` (any number; a cluster splits them by slot). The reply is an integer, the
  // keys removed, or an error if any part failed (then the caller retries the whole set:
  // UNLINK is idempotent). `bulk` work (pattern purges) travels on separate connections so
  // that it never delays exact-key purges.
  virtual void unlink(std::vector<std::string> keys, bool bulk, Callback done) = 0;
  // A command whose argv[key_index] is its only key (e.g. SMEMBERS).
  virtual void keyed(std::vector<std::string> argv, std::size_t key_index, Callback done) = 0;
  // Independent keyspaces that a pattern purge must SCAN, one per primary, named by the
  // node's "host:port". A pass takes this list at its start and keeps each SCAN cursor
  // with the name of the node that issued it: a cursor means nothing on another node.
  virtual std::vector<std::string> shards() const = 0;
  // Changes whenever keys may have moved between shards: the slot -> node map changed, or
  // a MOVED or ASK redirect was seen. A running pass then starts over.
  virtual std::uint64_t topology_version() const = 0;
  // SCAN on the named shard only; an error if that node is no longer a primary.
  virtual void scan(const std::string& shard, std::vector<std::string> argv, Callback done) = 0;
  // "host:port" of every node, for logs.
  virtual std::string describe() const = 0;
  // Commands sent between cork() and uncork() go out together when uncork() runs (see
  // AsyncClient::cork); a backend may ignore it (then they go out after the current handler).
  virtual void cork() {}
  virtual void uncork() {}
  // The highest hash slot the named primary owns, -1 if none or not a cluster (the pattern
  // index names its keys with a hash tag of that slot, so that they live on the node).
  virtual int last_slot_of(const std::string& /*shard*/) const { return -1; }
  // The primary ("host:port") that owns `slot` in the current slot map; "" if unknown or
  // not a cluster.
  virtual std::string owner_of(int /*slot*/) const { return {}; }
  // Cluster redirects followed so far (0 for a single server).
  virtual std::uint64_t moved_redirects() const { return 0; }
  virtual std::uint64_t ask_redirects() const { return 0; }
};

// One Redis server: a connection for exact keys and tags, one for scans and bulk UNLINKs.
class SingleBackend : public Backend {
 public:
  SingleBackend(boost::asio::io_context& io, const std::string& host, int port, int db,
                Timeouts timeouts = {});
  void start() override;
  void stop() override;
  bool ready() const override;
  void on_ready(std::function<void()> handler) override;
  void unlink(std::vector<std::string> keys, bool bulk, Callback done) override;
  void keyed(std::vector<std::string> argv, std::size_t key_index, Callback done) override;
  std::vector<std::string> shards() const override { return {describe()}; }
  std::uint64_t topology_version() const override { return 0; }
  void scan(const std::string& shard, std::vector<std::string> argv, Callback done) override;
  std::string describe() const override;
  void cork() override;
  void uncork() override;

 private:
  std::shared_ptr<AsyncClient> key_conn_;
  std::shared_ptr<AsyncClient> scan_conn_;
  std::function<void()> ready_handler_;
};

}  // namespace pgcohere::redis

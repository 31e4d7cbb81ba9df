// The pattern index on a Redis Cluster: one PrefixIndex per primary, subscribed to that
// node's keyspace notifications (which a node sends for its own keys only), keeping its
// sets on that node (their names carry a {hash tag} of one of the node's slots), built by
// a SCAN of that node. A purge runs on every primary side by side, except a pattern whose
// literal prefix holds a complete hash tag: its keys are all in that slot, so on the
// slot's node only. The list of primaries
// follows the backend's slot map: a new primary gets its index (its start-up SCAN covers
// the keys it received), a node that is no longer a primary loses it, and a node whose
// tag slot moved away gets a new tag and a rebuild. Keys moved by resharding are listed
// by their new node on arrival (RESTORE makes a new key there); their old node's entries
// are skipped by the purge and dropped by the trim.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "invalidation/key_families.h"
#include "invalidation/pattern_index.h"
#include "invalidation/prefix_index.h"
#include "redis/backend.h"

namespace pgcohere::invalidation {

class ClusterPrefixIndex : public PatternIndex, public std::enable_shared_from_this<ClusterPrefixIndex> {
 public:
  ClusterPrefixIndex(boost::asio::io_context& io, std::shared_ptr<redis::Backend> backend,
                     PrefixIndexOptions options = {});
  // Throws std::logic_error if the index is not owned by a std::shared_ptr.
  void start() override;
  void stop() override;
  void set_families(const std::string& source, const std::vector<std::string>& templates) override;
  bool ready() const override;
  std::optional<std::string> prefix_for(std::string_view pattern) const override;
  void purge(std::vector<Work> work, std::function<void(Result)> done) override;
  PrefixIndexCounters counters() const override;
  std::size_t families() const override { return families_.size(); }

  // "{t}" where t is the shortest decimal number whose CRC16 falls in `slot`.
  static std::string tag_for_slot(int slot);
  std::size_t nodes() const { return nodes_.size(); }

 private:
  struct Node {
    std::string tag;
    std::shared_ptr<PrefixIndex> index;
  };
  void reconcile();
  void schedule_reconcile();
  void retire(Node& node);

  boost::asio::io_context& io_;
  std::shared_ptr<redis::Backend> backend_;
  PrefixIndexOptions options_;
  std::map<std::string, Node> nodes_;  // primary "host:port" -> its index
  std::uint64_t topology_seen_ = ~std::uint64_t{0};
  std::map<std::string, std::vector<std::string>> templates_by_source_;
  KeyFamilies families_;
  PrefixIndexCounters retired_;  // counters of indexes that are gone
  bool stopping_ = true;
  boost::asio::steady_timer timer_;
};

}  // namespace pgcohere::invalidation

// The pattern index on a Redis Cluster (see cluster_prefix_index.h).
#include "invalidation/cluster_prefix_index.h"

#include <boost/asio/post.hpp>

#include <charconv>
#include <stdexcept>

#include "contract/glob.h"
#include "redis/keyslot.h"
#include "util/log.h"

namespace pgcohere::invalidation {

namespace {
void add(PrefixIndexCounters& to, const PrefixIndexCounters& c) {
  to.builds += c.builds;
  to.entries_added += c.entries_added;
  to.entries_trimmed += c.entries_trimmed;
  to.trims += c.trims;
  to.unavailable += c.unavailable;
}
}  // namespace

ClusterPrefixIndex::ClusterPrefixIndex(boost::asio::io_context& io, std::shared_ptr<redis::Backend> backend,
                                       PrefixIndexOptions options)
    : io_(io), backend_(std::move(backend)), options_(options), timer_(io) {}

std::string ClusterPrefixIndex::tag_for_slot(int slot) {
  for (unsigned n = 0;; ++n) {
    std::string t = std::to_string(n);
    if (redis::keyslot("{" + t + "}") == slot) return "{" + t + "}";
  }
}

void ClusterPrefixIndex::start() {
  if (weak_from_this().expired())
    throw std::logic_error("ClusterPrefixIndex must be owned by a std::shared_ptr (std::make_shared)");
  stopping_ = false;
  schedule_reconcile();
}

void ClusterPrefixIndex::stop() {
  stopping_ = true;
  timer_.cancel();
  for (auto& [addr, node] : nodes_) retire(node);
  nodes_.clear();
}

void ClusterPrefixIndex::retire(Node& node) {
  add(retired_, node.index->counters());
  node.index->stop();
}

void ClusterPrefixIndex::schedule_reconcile() {
  if (stopping_) return;
  timer_.expires_after(std::chrono::milliseconds(200));
  timer_.async_wait([this, weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (!self || ec) return;
    reconcile();
    schedule_reconcile();
  });
}

void ClusterPrefixIndex::reconcile() {
  std::uint64_t topology = backend_->topology_version();
  if (topology == topology_seen_) return;
  auto primaries = backend_->shards();
  if (primaries.empty()) return;  // no slot map yet
  topology_seen_ = topology;
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    bool still = false;
    for (const auto& p : primaries) still = still || p == it->first;
    if (still) {
      ++it;
      continue;
    }
    PGC_LOG_INFO << "pattern index: " << it->first << " is no longer a primary";
    retire(it->second);
    it = nodes_.erase(it);
  }
  for (const auto& addr : primaries) {
    int slot = backend_->last_slot_of(addr);
    if (slot < 0) continue;
    std::string tag = tag_for_slot(slot);
    auto it = nodes_.find(addr);
    if (it != nodes_.end() && it->second.tag == tag) continue;
    if (it != nodes_.end()) {
      // Its tag slot moved away: the sets under the old tag now live elsewhere.
      retire(it->second);
      nodes_.erase(it);
    }
    auto colon = addr.rfind(':');
    int port = 0;
    if (colon == std::string::npos ||
        std::from_chars(addr.data() + colon + 1, addr.data() + addr.size(), port).ec != std::errc())
      continue;
    auto index = std::make_shared<PrefixIndex>(io_, addr.substr(0, colon), port, 0, options_, tag);
    index->start();
    for (const auto& [source, templates] : templates_by_source_) index->set_families(source, templates);
    PGC_LOG_INFO << "pattern index: primary " << addr << " keeps its sets under " << tag;
    nodes_[addr] = Node{tag, std::move(index)};
  }
}

void ClusterPrefixIndex::set_families(const std::string& source, const std::vector<std::string>& templates) {
  templates_by_source_[source] = templates;
  std::vector<std::string> all;
  for (const auto& [src, list] : templates_by_source_) all.insert(all.end(), list.begin(), list.end());
  families_.assign(all);
  for (auto& [addr, node] : nodes_) node.index->set_families(source, templates);
}

bool ClusterPrefixIndex::ready() const {
  if (families_.empty() || topology_seen_ != backend_->topology_version()) return false;
  auto primaries = backend_->shards();
  if (primaries.empty()) return false;
  for (const auto& p : primaries) {
    auto it = nodes_.find(p);
    if (it == nodes_.end() || !it->second.index->ready()) return false;
  }
  return true;
}

std::optional<std::string> ClusterPrefixIndex::prefix_for(std::string_view pattern) const {
  if (!ready()) return std::nullopt;
  return families_.prefix_for(pattern);
}

namespace {
struct ClusterGather {
  std::size_t outstanding = 0;
  PatternIndex::Result result{true, 0, 0};
  std::function<void(PatternIndex::Result)> done;
};
}  // namespace

void ClusterPrefixIndex::purge(std::vector<Work> work, std::function<void(Result)> done) {
  if (!ready()) {
    boost::asio::post(io_, [done = std::move(done)] { done(Result{false, 0, 0}); });
    return;
  }
  // A pattern whose literal prefix holds a complete hash tag can only match keys of that
  // slot, listed by the slot's node: that node only (one barrier, one script). Any other
  // pattern: every primary.
  std::map<std::string, std::vector<Work>> by_node;
  for (auto& w : work) {
    std::string literal = contract::literal_prefix(w.pattern);
    auto tag = redis::prefix_hash_tag(literal);
    auto owner = tag ? backend_->owner_of(redis::keyslot("{" + std::string(*tag) + "}")) : std::string();
    if (!owner.empty() && nodes_.count(owner)) {
      w.slot_check = std::string(PrefixIndex::kNamespace) + "slot:{" + std::string(*tag) + "}";
      by_node[owner].push_back(std::move(w));
      continue;
    }
    for (const auto& [addr, node] : nodes_) by_node[addr].push_back(w);
  }
  auto g = std::make_shared<ClusterGather>();
  g->outstanding = by_node.size();
  g->done = std::move(done);
  std::uint64_t topology = backend_->topology_version();
  if (by_node.empty()) {
    boost::asio::post(io_, [g] { g->done(g->result); });
    return;
  }
  for (auto& [addr, node_work] : by_node) {
    std::vector<std::string> checks;
    for (const auto& w : node_work)
      if (!w.slot_check.empty()) checks.push_back(w.slot_check);
    nodes_[addr].index->purge(std::move(node_work), [this, g, topology, checks = std::move(checks),
                                                      weak = weak_from_this()](Result r) {
      auto self = weak.lock();
      if (self && !r.ok) {
        // A slot check redirected (or the node failed): the same EXISTS through the
        // backend follows the MOVED and updates its slot map, so that the next purge of
        // that slot goes to its new node instead of failing over to a scan again.
        for (const auto& key : checks) backend_->keyed({"EXISTS", key}, 1, [](redis::Reply) {});
      }
      g->result.ok = g->result.ok && r.ok;
      g->result.removed += r.removed;
      g->result.visited += r.visited;
      if (--g->outstanding > 0) return;
      // Keys moved between nodes meanwhile: a node may have been purged before a key
      // arrived from one purged after it left. Scan instead.
      if (!self || backend_->topology_version() != topology) g->result.ok = false;
      g->done(g->result);
    });
  }
}

PrefixIndexCounters ClusterPrefixIndex::counters() const {
  PrefixIndexCounters out = retired_;
  for (const auto& [addr, node] : nodes_) add(out, node.index->counters());
  return out;
}

}  // namespace pgcohere::invalidation

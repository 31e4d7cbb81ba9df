// Pattern passes over several shards (Redis Cluster primaries): each SCAN cursor goes back to
// the node that issued it, and a topology change during a pass (slot map changed, MOVED or
// ASK seen) starts the pass over. A scripted backend is used instead of a real cluster
// because the point is the interleaving (a reshard between two SCAN steps), which a real
// cluster cannot produce deterministically; tests/test_redis_cluster.py covers the real one.
#include "invalidation/purger.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "contract/glob.h"

using namespace pgcohere;
using redis::Reply;

namespace {

// Every node holds some keys; SCAN looks at one key per step (applying MATCH) and returns a
// cursor that only that node issued ("<node>/<position>"); it refuses any cursor it did not
// issue. Unlinked keys are skipped, not erased, so positions (cursors) stay valid.
class ScriptedCluster : public redis::Backend {
 public:
  explicit ScriptedCluster(boost::asio::io_context& io) : io_(io) {}

  void start() override {}
  void stop() override {}
  bool ready() const override { return true; }
  void on_ready(std::function<void()>) override {}
  void unlink(std::vector<std::string> keys, bool, Callback done) override {
    long long removed = 0;
    for (auto& k : keys) {
      for (const auto& [node, held] : keys_)
        if (std::find(held.begin(), held.end(), k) != held.end() && !unlinked.count(k)) ++removed;
      unlinked.insert(std::move(k));
    }
    if (on_unlink) on_unlink();
    post([done = std::move(done), removed] {
      Reply r;
      r.type = Reply::Type::integer;
      r.integer = removed;
      done(r);
    });
  }
  void keyed(std::vector<std::string>, std::size_t, Callback done) override {
    post([done = std::move(done)] { done(Reply::make_error("unused")); });
  }
  std::vector<std::string> shards() const override { return order; }
  std::uint64_t topology_version() const override { return topology; }
  void scan(const std::string& shard, std::vector<std::string> argv, Callback done) override {
    std::string cursor = argv.at(1);
    scans.emplace_back(shard, cursor);
    std::size_t pos = 0;
    if (cursor != "0") {
      auto slash = cursor.find('/');
      if (slash == std::string::npos || cursor.substr(0, slash) != shard) {
        ++foreign_cursors;
        post([done = std::move(done)] { done(Reply::make_error("ERR invalid cursor")); });
        return;
      }
      pos = std::stoul(cursor.substr(slash + 1));
    }
    const auto& held = keys_[shard];
    Reply page;
    page.type = Reply::Type::array;
    std::vector<Reply> found;
    if (pos < held.size() && !unlinked.count(held[pos]) && contract::glob_match(argv.at(3), held[pos])) {
      Reply k;
      k.type = Reply::Type::string;
      k.str = held[pos];
      found.push_back(k);
    }
    Reply next;
    next.type = Reply::Type::string;
    next.str = pos + 1 < held.size() ? shard + "/" + std::to_string(pos + 1) : "0";
    Reply list;
    list.type = Reply::Type::array;
    list.elements = std::move(found);
    page.elements = {next, list};
    if (on_scan) on_scan(shard, cursor);
    post([done = std::move(done), page] { done(page); });
  }
  std::string describe() const override { return "scripted"; }

  void hold(const std::string& node, std::vector<std::string> keys) {
    keys_[node] = std::move(keys);
    if (std::find(order.begin(), order.end(), node) == order.end()) order.push_back(node);
  }
  std::size_t scans_from_zero(const std::string& node) const {
    return static_cast<std::size_t>(std::count(scans.begin(), scans.end(), std::pair<std::string, std::string>(node, "0")));
  }

  std::vector<std::string> order;
  std::uint64_t topology = 0;
  std::vector<std::pair<std::string, std::string>> scans;
  std::set<std::string> unlinked;
  int foreign_cursors = 0;
  std::function<void(const std::string&, const std::string&)> on_scan;
  std::function<void()> on_unlink;

 private:
  template <class F>
  void post(F f) {
    boost::asio::post(io_, std::move(f));
  }
  boost::asio::io_context& io_;
  std::map<std::string, std::vector<std::string>> keys_;
};

// Runs the io_context until the job completes (or a generous deadline passes).
bool run_until(boost::asio::io_context& io, const bool& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_for(std::chrono::milliseconds(20));
  }
  return done;
}

const std::string A = "10.0.0.1:7001", B = "10.0.0.2:7002";

}  // namespace

TEST(PurgerShards, CursorsGoBackToTheNodeThatIssuedThem) {
  boost::asio::io_context io;
  ScriptedCluster cluster(io);
  cluster.hold(A, {"m:1:a", "m:1:b", "m:1:c"});
  cluster.hold(B, {"m:1:d", "m:1:e", "m:1:f"});
  // Between two SCAN steps the shard list comes back in another order (what a reshard did
  // to the list of primaries). A cursor of A must still go to A.
  cluster.on_scan = [&](const std::string&, const std::string&) {
    cluster.order = {B, A};
  };
  auto purger = std::make_shared<invalidation::Purger>(io, cluster);
  bool done = false;
  purger->submit({{}, {"m:1:*"}, {}}, [&] { done = true; });
  ASSERT_TRUE(run_until(io, done));
  EXPECT_EQ(cluster.foreign_cursors, 0);
  EXPECT_EQ(cluster.unlinked, (std::set<std::string>{"m:1:a", "m:1:b", "m:1:c", "m:1:d", "m:1:e", "m:1:f"}));
  EXPECT_EQ(purger->counters().scan_passes, 1u);
}

TEST(PurgerShards, TopologyChangeBetweenScanStepsRestartsThePass) {
  boost::asio::io_context io;
  ScriptedCluster cluster(io);
  cluster.hold(A, {"m:1:a", "m:1:b", "m:1:c"});
  cluster.hold(B, {"m:1:d"});
  bool moved = false;
  cluster.on_scan = [&](const std::string& node, const std::string& cursor) {
    if (!moved && node == A && cursor != "0") {
      moved = true;
      ++cluster.topology;  // a MOVED (or a new slot map) while the pass runs
    }
  };
  auto purger = std::make_shared<invalidation::Purger>(io, cluster);
  bool done = false;
  purger->submit({{}, {"m:1:*"}, {}}, [&] { done = true; });
  ASSERT_TRUE(run_until(io, done));
  EXPECT_TRUE(moved);
  EXPECT_EQ(purger->counters().scan_passes, 2u);
  EXPECT_EQ(cluster.scans_from_zero(A), 2u);
  EXPECT_EQ(cluster.scans_from_zero(B), 2u);
  EXPECT_EQ(cluster.unlinked, (std::set<std::string>{"m:1:a", "m:1:b", "m:1:c", "m:1:d"}));
}

TEST(PurgerShards, TopologyChangeAfterTheLastScanStepStillRestartsThePass) {
  // A MOVED seen by the pass's own UNLINK, after every SCAN finished: keys were moving, so
  // the pass is not trusted and runs again.
  boost::asio::io_context io;
  ScriptedCluster cluster(io);
  cluster.hold(A, {"m:1:a"});
  cluster.hold(B, {"m:1:b"});
  int unlinks = 0;
  cluster.on_unlink = [&] {
    if (++unlinks == 2) ++cluster.topology;
  };
  auto purger = std::make_shared<invalidation::Purger>(io, cluster);
  bool done = false;
  purger->submit({{}, {"m:1:*"}, {}}, [&] { done = true; });
  ASSERT_TRUE(run_until(io, done));
  EXPECT_EQ(purger->counters().scan_passes, 2u);
  EXPECT_EQ(cluster.scans_from_zero(A), 2u);
  EXPECT_EQ(cluster.scans_from_zero(B), 2u);
}

TEST(PurgerShards, NoTopologyChangeMeansOnePass) {
  boost::asio::io_context io;
  ScriptedCluster cluster(io);
  cluster.hold(A, {"m:1:a", "x:1"});
  cluster.hold(B, {"m:1:b", "m:2:b"});
  auto purger = std::make_shared<invalidation::Purger>(io, cluster);
  bool done = false;
  purger->submit({{}, {"m:1:*"}, {}}, [&] { done = true; });
  ASSERT_TRUE(run_until(io, done));
  EXPECT_EQ(purger->counters().scan_passes, 1u);
  EXPECT_EQ(cluster.unlinked, (std::set<std::string>{"m:1:a", "m:1:b"}));
}

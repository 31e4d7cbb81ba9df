// The purger against a real redis-server started by the test: queued keys coalesce, all
// pending patterns share one SCAN pass, batches respect their bounds, tags unlink members.
#include "cache/redis_layout.h"
#include "invalidation/purger.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "redis/backend.h"
#include "support/local_redis.h"
#include "support/run_until.h"

using namespace pgcohere;
using testing_support::run_until;

namespace {

class PurgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.start()) << "redis-server did not start";
    port_ = redis_.port();
    sync_ = redis_.sync();
  }
  long long cmd_int(const std::string& command) {
    auto* r = static_cast<redisReply*>(redisCommand(sync_, command.c_str()));
    long long v = r ? r->integer : -1;
    if (r) freeReplyObject(r);
    return v;
  }
  void set(const std::string& key) { freeReplyObject(redisCommand(sync_, "SET %s v", key.c_str())); }

  testing_support::LocalRedis redis_;
  int port_ = 0;
  redisContext* sync_ = nullptr;  // redis_'s
};

invalidation::PurgeJob keys(std::initializer_list<std::string> k) {
  invalidation::PurgeJob j;
  j.keys = k;
  return j;
}

}  // namespace

TEST_F(PurgerTest, QueuedKeysCoalesceAndEveryJobCompletes) {
  for (auto k : {"a", "b", "c", "d"}) set(k);
  boost::asio::io_context io;
  redis::SingleBackend backend(io, "127.0.0.1", port_, 0);
  auto purger = std::make_shared<invalidation::Purger>(io, backend);
  int done = 0;
  // Submitted before Redis is connected: they wait in the queue, where duplicates merge.
  purger->submit(keys({"a", "b"}), [&] { ++done; });
  purger->submit(keys({"b", "c"}), [&] { ++done; });
  purger->submit(keys({"c", "d", "a"}), [&] { ++done; });
  EXPECT_EQ(purger->counters().keys_coalesced, 3u);
  backend.on_ready([&] { purger->resume(); });
  backend.start();
  ASSERT_TRUE(run_until(io, [&] { return done == 3; }));
  EXPECT_EQ(purger->counters().keys_sent, 4u);
  EXPECT_EQ(purger->counters().keys_removed, 4u);
  EXPECT_EQ(cmd_int("DBSIZE"), 0);
  EXPECT_TRUE(purger->idle());
  backend.stop();
}

TEST_F(PurgerTest, PendingPatternsShareOneScanPass) {
  for (int conv = 1; conv <= 20; ++conv)
    for (int i = 0; i < 30; ++i) set("msg:history:" + std::to_string(conv) + ":" + std::to_string(i));
  set("other:1");
  boost::asio::io_context io;
  redis::SingleBackend backend(io, "127.0.0.1", port_, 0);
  invalidation::PurgeOptions options;
  options.scan_count = 50;
  auto purger = std::make_shared<invalidation::Purger>(io, backend, options);
  int done = 0;
  for (int conv = 1; conv <= 5; ++conv) {
    invalidation::PurgeJob j;
    j.patterns = {"msg:history:" + std::to_string(conv) + ":*"};
    purger->submit(j, [&] { ++done; });
  }
  backend.on_ready([&] { purger->resume(); });
  backend.start();
  ASSERT_TRUE(run_until(io, [&] { return done == 5; }));
  EXPECT_EQ(purger->counters().scan_passes, 1u);
  EXPECT_EQ(purger->counters().patterns_purged, 5u);
  EXPECT_EQ(purger->counters().pattern_keys_removed, 150u);
  EXPECT_EQ(cmd_int("DBSIZE"), 15 * 30 + 1);
  backend.stop();
}

TEST_F(PurgerTest, BoundedBatchesAndTags) {
  boost::asio::io_context io;
  redis::SingleBackend backend(io, "127.0.0.1", port_, 0);
  invalidation::PurgeOptions options;
  options.batch_keys = 100;
  options.max_in_flight = 2;
  auto purger = std::make_shared<invalidation::Purger>(io, backend, options);
  backend.on_ready([&] { purger->resume(); });
  backend.start();
  ASSERT_TRUE(run_until(io, [&] { return backend.ready(); }));
  invalidation::PurgeJob j;
  for (int i = 0; i < 1000; ++i) {
    set("k" + std::to_string(i));
    j.keys.push_back("k" + std::to_string(i));
  }
  // A query-cache tag of database "app": its entries and its set go, its version moves.
  freeReplyObject(redisCommand(sync_, "SADD pgcohere:{app}:s:tbl:42 pgcohere:{app}:e:q1 pgcohere:{app}:e:q2"));
  set("pgcohere:{app}:e:q1");
  set("pgcohere:{app}:e:q2");
  set("pgcohere:{app}:e:untagged");
  j.tags = {cache::scope_tag("app", "tbl:42")};
  bool done = false;
  purger->submit(j, [&] { done = true; });
  ASSERT_TRUE(run_until(io, [&] { return done; }));
  EXPECT_EQ(purger->counters().keys_removed, 1000u);
  EXPECT_EQ(purger->counters().tags_invalidated, 1u);
  EXPECT_EQ(purger->counters().tagged_entries_removed, 2u);
  EXPECT_EQ(cmd_int("EXISTS pgcohere:{app}:e:q1 pgcohere:{app}:e:q2 pgcohere:{app}:s:tbl:42"), 0);
  EXPECT_EQ(cmd_int("EXISTS pgcohere:{app}:e:untagged pgcohere:{app}:v:tbl:42 pgcohere:{app}:gen"), 3);
  backend.stop();
}

TEST_F(PurgerTest, KeysSubmittedWhileHeldGoOutAsOneUnlinkWhenReleased) {
  boost::asio::io_context io;
  redis::SingleBackend backend(io, "127.0.0.1", port_, 0);
  auto purger = std::make_shared<invalidation::Purger>(io, backend);
  backend.on_ready([&] { purger->resume(); });
  backend.start();
  ASSERT_TRUE(run_until(io, [&] { return backend.ready(); }));
  freeReplyObject(redisCommand(sync_, "CONFIG RESETSTAT"));
  for (auto k : {"n:1", "n:2", "n:3"}) set(k);
  int done = 0;
  // The notifications of one read: held, nothing is sent until the release.
  purger->hold();
  purger->submit(keys({"n:1"}), [&] { ++done; });
  purger->submit(keys({"n:2"}), [&] { ++done; });
  purger->submit(keys({"n:3", "n:1"}), [&] { ++done; });
  io.restart();
  io.run_for(std::chrono::milliseconds(200));  // the loop runs; nothing may go out
  EXPECT_EQ(done, 0);
  EXPECT_EQ(purger->queued_keys(), 3u);
  EXPECT_EQ(cmd_int("EXISTS n:1 n:2 n:3"), 3);
  purger->release_hold();
  ASSERT_TRUE(run_until(io, [&] { return done == 3; }));
  EXPECT_EQ(purger->counters().keys_removed, 3u);
  EXPECT_EQ(cmd_int("EXISTS n:1 n:2 n:3"), 0);
  auto* r = static_cast<redisReply*>(redisCommand(sync_, "INFO commandstats"));
  ASSERT_NE(r, nullptr);
  std::string stats(r->str, r->len);
  freeReplyObject(r);
  EXPECT_NE(stats.find("cmdstat_unlink:calls=1,"), std::string::npos) << stats;
  EXPECT_TRUE(purger->idle());
  backend.stop();
}

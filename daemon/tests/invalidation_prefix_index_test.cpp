// The prefix index against a real redis-server started by the test: keys written before
// and after the daemon subscribed are purged through their set without a SCAN pass, the
// trim drops entries of expired keys, flags already set are kept, and without keyspace
// notifications pattern purges scan.
#include "invalidation/prefix_index.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "invalidation/purger.h"
#include "redis/backend.h"
#include "support/local_redis.h"

using namespace pgcohere;
using invalidation::PrefixIndex;

namespace {

class PrefixIndexTest : public ::testing::Test {
 protected:
  void start_redis(std::vector<std::string> extra = {}) {
    ASSERT_TRUE(redis_.start(std::move(extra))) << "redis-server did not start";
    port_ = redis_.port();
    sync_ = redis_.sync();
  }
  long long cmd_int(const std::string& command) {
    auto* r = static_cast<redisReply*>(redisCommand(sync_, command.c_str()));
    long long v = r ? r->integer : -1;
    if (r) freeReplyObject(r);
    return v;
  }
  std::string cmd_str(const std::string& command) {
    auto* r = static_cast<redisReply*>(redisCommand(sync_, command.c_str()));
    std::string v;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2) v.assign(r->element[1]->str, r->element[1]->len);
    if (r) freeReplyObject(r);
    return v;
  }
  long long count_keys(const std::string& pattern) {
    auto* r = static_cast<redisReply*>(redisCommand(sync_, "EVAL %s 0", ("return #redis.call('KEYS', '" + pattern + "')").c_str()));
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r) freeReplyObject(r);
    return v;
  }
  void set(const std::string& key, const char* extra = "") {
    freeReplyObject(redisCommand(sync_, ("SET %s v " + std::string(extra)).c_str(), key.c_str()));
  }
  template <typename F>
  bool run_until(boost::asio::io_context& io, F done, int seconds = 10) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.restart();
      io.run_for(std::chrono::milliseconds(10));
    }
    return done();
  }
  // Purges `pattern` through a purger that uses `index`; true once done.
  bool purge(boost::asio::io_context& io, invalidation::Purger& purger_ref, const std::string& pattern) {
    invalidation::PurgeJob j;
    j.patterns = {pattern};
    bool done = false;
    purger_ref.submit(j, [&] { done = true; });
    return run_until(io, [&] { return done; });
  }

  testing_support::LocalRedis redis_;
  int port_ = 0;
  redisContext* sync_ = nullptr;  // redis_'s
};

}  // namespace

TEST_F(PrefixIndexTest, KeysWrittenBeforeAndAfterStartArePurgedThroughTheirSetWithoutAScan) {
  start_redis();
  for (int i = 0; i < 30; ++i) {
    set("msg:history:42:" + std::to_string(i) + ":0");
    set("msg:history:43:" + std::to_string(i) + ":0");
  }
  boost::asio::io_context io;
  redis::SingleBackend backend(io, "127.0.0.1", port_, 0);
  auto index = std::make_shared<PrefixIndex>(io, "127.0.0.1", port_, 0);
  auto purger = std::make_shared<invalidation::Purger>(io, backend, invalidation::PurgeOptions{}, index.get());
  backend.on_ready([&] { purger->resume(); });
  backend.start();
  index->start();
  index->set_families("db", {"msg:history:{conversation_id}:*", "conv:metadata:{id}"});
  ASSERT_TRUE(run_until(io, [&] { return index->ready(); }));
  EXPECT_EQ(index->counters().builds, 1u);
  EXPECT_NE(cmd_str("CONFIG GET notify-keyspace-events").find('n'), std::string::npos);
  for (int i = 0; i < 30; ++i) set("msg:history:42:" + std::to_string(i) + ":1");  // via notifications
  ASSERT_TRUE(purge(io, *purger, "msg:history:42:*"));
  EXPECT_EQ(count_keys("msg:history:42:*"), 0);
  EXPECT_EQ(count_keys("msg:history:43:*"), 30);
  EXPECT_EQ(purger->counters().scan_passes, 0u);
  EXPECT_EQ(purger->counters().index_patterns, 1u);
  EXPECT_EQ(purger->counters().pattern_keys_removed, 60u);
  EXPECT_EQ(purger->counters().index_keys_visited, 60u);  // conversation 42's entries only
  EXPECT_EQ(cmd_int("EXISTS pgcohere-idx:s:msg:history:42:"), 0);
  EXPECT_EQ(cmd_int("SCARD pgcohere-idx:s:msg:history:43:"), 30);
  // A key written right after the purge began is in the set for the next one.
  set("msg:history:42:0:2");
  ASSERT_TRUE(purge(io, *purger, "msg:history:42:*"));
  EXPECT_EQ(cmd_int("EXISTS msg:history:42:0:2"), 0);
  index->stop();
  backend.stop();
}

TEST_F(PrefixIndexTest, APatternNarrowerThanItsPrefixRemovesOnlyItsMatches) {
  start_redis();
  boost::asio::io_context io;
  redis::SingleBackend backend(io, "127.0.0.1", port_, 0);
  auto index = std::make_shared<PrefixIndex>(io, "127.0.0.1", port_, 0);
  auto purger = std::make_shared<invalidation::Purger>(io, backend, invalidation::PurgeOptions{}, index.get());
  backend.on_ready([&] { purger->resume(); });
  backend.start();
  index->start();
  index->set_families("db", {"feed:{user}:*"});
  ASSERT_TRUE(run_until(io, [&] { return index->ready(); }));
  set("feed:7:a:page");
  set("feed:7:b:page");
  set("feed:7:a:meta");
  ASSERT_TRUE(purge(io, *purger, "feed:7:*:page"));
  EXPECT_EQ(cmd_int("EXISTS feed:7:a:page feed:7:b:page"), 0);
  EXPECT_EQ(cmd_int("EXISTS feed:7:a:meta"), 1);
  EXPECT_EQ(cmd_int("SCARD pgcohere-idx:s:feed:7:"), 1);
  EXPECT_EQ(purger->counters().scan_passes, 0u);
  index->stop();
  backend.stop();
}

TEST_F(PrefixIndexTest, TheTrimDropsEntriesOfExpiredKeysAndEmptySets) {
  start_redis();
  boost::asio::io_context io;
  invalidation::PrefixIndexOptions options;
  options.trim_interval = std::chrono::milliseconds(0);  // the test trims by hand
  auto index = std::make_shared<PrefixIndex>(io, "127.0.0.1", port_, 0, options);
  index->start();
  index->set_families("db", {"msg:history:{c}:*"});
  ASSERT_TRUE(run_until(io, [&] { return index->ready(); }));
  for (int i = 0; i < 20; ++i) set("msg:history:1:" + std::to_string(i), "PX 100");
  set("msg:history:2:0");
  ASSERT_TRUE(run_until(io, [&] { return index->counters().entries_added == 21; }));
  EXPECT_EQ(cmd_int("SCARD pgcohere-idx:s:msg:history:1:"), 20);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(count_keys("msg:history:1:*"), 0);  // expired
  index->trim_now();
  ASSERT_TRUE(run_until(io, [&] { return index->counters().trims == 1; }));
  EXPECT_EQ(index->counters().entries_trimmed, 20u);
  EXPECT_EQ(cmd_int("EXISTS pgcohere-idx:s:msg:history:1:"), 0);
  EXPECT_EQ(cmd_int("SISMEMBER pgcohere-idx:registry pgcohere-idx:s:msg:history:1:"), 0);
  EXPECT_EQ(cmd_int("SCARD pgcohere-idx:s:msg:history:2:"), 1);
  index->stop();
}

TEST_F(PrefixIndexTest, FlagsAlreadySetAreKept) {
  start_redis({"--notify-keyspace-events", "Kx"});
  boost::asio::io_context io;
  auto index = std::make_shared<PrefixIndex>(io, "127.0.0.1", port_, 0);
  index->start();
  index->set_families("db", {"a:{x}:*"});
  ASSERT_TRUE(run_until(io, [&] { return index->ready(); }));
  std::string flags = cmd_str("CONFIG GET notify-keyspace-events");
  for (char f : std::string("KxEne")) EXPECT_NE(flags.find(f), std::string::npos) << f << " in " << flags;
  index->stop();
}

TEST_F(PrefixIndexTest, WithoutNotificationsAndNoConfigPatternPurgesScan) {
  start_redis({"--rename-command", "CONFIG", ""});
  set("msg:history:5:0");
  boost::asio::io_context io;
  redis::SingleBackend backend(io, "127.0.0.1", port_, 0);
  auto index = std::make_shared<PrefixIndex>(io, "127.0.0.1", port_, 0);
  auto purger = std::make_shared<invalidation::Purger>(io, backend, invalidation::PurgeOptions{}, index.get());
  backend.on_ready([&] { purger->resume(); });
  backend.start();
  index->start();
  index->set_families("db", {"msg:history:{c}:*"});
  ASSERT_TRUE(run_until(io, [&] { return index->counters().unavailable >= 1; }));
  EXPECT_FALSE(index->ready());
  ASSERT_TRUE(purge(io, *purger, "msg:history:5:*"));
  EXPECT_EQ(cmd_int("EXISTS msg:history:5:0"), 0);
  EXPECT_EQ(purger->counters().scan_passes, 1u);
  index->stop();
  backend.stop();
}

TEST_F(PrefixIndexTest, KeysWrittenWhileNoIndexWasSubscribedArePurged) {
  start_redis();
  boost::asio::io_context io;
  redis::SingleBackend backend(io, "127.0.0.1", port_, 0);
  backend.start();
  {
    auto first = std::make_shared<PrefixIndex>(io, "127.0.0.1", port_, 0);
    first->start();
    first->set_families("db", {"msg:history:{c}:*"});
    ASSERT_TRUE(run_until(io, [&] { return first->ready(); }));
    set("msg:history:3:before");
    ASSERT_TRUE(run_until(io, [&] { return first->counters().entries_added == 1; }));
  }  // gone without a goodbye, like a killed daemon
  for (int i = 0; i < 100; ++i) set("msg:history:3:" + std::to_string(i));
  auto second = std::make_shared<PrefixIndex>(io, "127.0.0.1", port_, 0);
  auto purger = std::make_shared<invalidation::Purger>(io, backend, invalidation::PurgeOptions{}, second.get());
  second->start();
  second->set_families("db", {"msg:history:{c}:*"});
  ASSERT_TRUE(run_until(io, [&] { return second->ready(); }));
  ASSERT_TRUE(purge(io, *purger, "msg:history:3:*"));
  EXPECT_EQ(count_keys("msg:history:3:*"), 0);
  EXPECT_EQ(purger->counters().index_patterns, 1u);
  EXPECT_EQ(purger->counters().scan_passes, 0u);
  EXPECT_EQ(purger->counters().pattern_keys_removed, 101u);
  second->stop();
  backend.stop();
}

TEST_F(PrefixIndexTest, AddingAsManyEntriesAsTheLastTrimLeftTrimsAgain) {
  start_redis();
  boost::asio::io_context io;
  invalidation::PrefixIndexOptions options;
  options.trim_interval = std::chrono::hours(1);  // only growth triggers a pass here
  options.trim_min_entries = 10;
  auto index = std::make_shared<PrefixIndex>(io, "127.0.0.1", port_, 0, options);
  index->start();
  index->set_families("db", {"msg:history:{c}:*"});
  ASSERT_TRUE(run_until(io, [&] { return index->ready(); }));
  for (int i = 0; i < 20; ++i) set("msg:history:1:" + std::to_string(i), "PX 200");
  // 20 entries added (more than 10): a pass runs, while the keys still live.
  ASSERT_TRUE(run_until(io, [&] { return index->counters().trims == 1; }));
  EXPECT_EQ(index->counters().entries_trimmed, 0u);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));  // they expire
  for (int i = 0; i < 21; ++i) set("msg:history:2:" + std::to_string(i));
  // 21 more than the 20 the last pass left: the next pass drops the 20 expired entries,
  // so the sets never hold more entries of vanished keys than of live ones for long.
  ASSERT_TRUE(run_until(io, [&] { return index->counters().trims == 2; }));
  EXPECT_EQ(index->counters().entries_trimmed, 20u);
  EXPECT_EQ(cmd_int("EXISTS pgcohere-idx:s:msg:history:1:"), 0);
  EXPECT_EQ(cmd_int("SCARD pgcohere-idx:s:msg:history:2:"), 21);
  index->stop();
}

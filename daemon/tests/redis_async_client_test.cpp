// The hiredis connection on Asio against a real redis-server started by the test: commands
// sent while corked go out only at the uncork; a reply's callback never runs
// inside command(); replies complete in the order of their commands.
#include "redis/async_client.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/local_redis.h"
#include "support/run_until.h"

using namespace pgcohere;
using testing_support::run_until;

namespace {

class AsyncClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.start()) << "redis-server did not start";
    port_ = redis_.port();
    sync_ = redis_.sync();
  }
  std::string sync_str(const char* command) {
    auto* r = static_cast<redisReply*>(redisCommand(sync_, command));
    std::string v = r && r->str ? std::string(r->str, r->len) : "";
    if (r) freeReplyObject(r);
    return v;
  }

  testing_support::LocalRedis redis_;
  int port_ = 0;
  redisContext* sync_ = nullptr;  // redis_'s
};

}  // namespace

TEST_F(AsyncClientTest, CommandsSentWhileCorkedGoOutAtTheUncork) {
  boost::asio::io_context io;
  auto client = std::make_shared<redis::AsyncClient>(io, "127.0.0.1", port_, 0);
  client->start();
  ASSERT_TRUE(run_until(io, [&] { return client->connected(); }));
  std::vector<std::string> replies;
  client->cork();
  client->command({"SET", "corked", "1"}, [&](redis::Reply r) { replies.push_back(r.str); });
  client->command({"GET", "corked"}, [&](redis::Reply r) { replies.push_back(r.str); });
  io.restart();
  io.run_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(replies.empty());
  auto* r = static_cast<redisReply*>(redisCommand(sync_, "EXISTS corked"));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->integer, 0);  // nothing was written yet
  freeReplyObject(r);
  client->uncork();
  ASSERT_TRUE(run_until(io, [&] { return replies.size() == 2; }));
  EXPECT_EQ(replies, (std::vector<std::string>{"OK", "1"}));  // in the order of the commands
  client->stop();
}

TEST_F(AsyncClientTest, AReplyCallbackNeverRunsInsideCommand) {
  boost::asio::io_context io;
  auto client = std::make_shared<redis::AsyncClient>(io, "127.0.0.1", port_, 0);
  client->start();
  ASSERT_TRUE(run_until(io, [&] { return client->connected(); }));
  int done = 0;
  bool inside = false;
  // Each callback sends the next command; none may complete while command() runs.
  std::function<void(redis::Reply)> next = [&](redis::Reply r) {
    EXPECT_FALSE(inside);
    EXPECT_FALSE(r.is_error()) << r.str;
    if (++done == 50) return;
    inside = true;
    client->command({"INCR", "n"}, next);
    inside = false;
  };
  inside = true;
  client->command({"INCR", "n"}, next);
  inside = false;
  ASSERT_TRUE(run_until(io, [&] { return done == 50; }));
  EXPECT_EQ(sync_str("GET n"), "50");
  client->stop();
}

// The hiredis connection on Asio against a real redis-server started by the test: commands
// sent while corked go out only at the uncork; a reply's callback never runs
// inside command(); replies complete in the order of their commands.
#include "redis/async_client.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

using namespace pgcohere;

namespace {

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

class AsyncClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = free_port();
    std::string port = std::to_string(port_);
    const char* argv[] = {"redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--logfile", "/dev/null", nullptr};
    ASSERT_EQ(posix_spawnp(&pid_, "redis-server", nullptr, nullptr, const_cast<char**>(argv), environ), 0);
    for (int i = 0; i < 200 && !sync_; ++i) {
      redisContext* c = redisConnect("127.0.0.1", port_);
      if (c && !c->err) {
        sync_ = c;
        break;
      }
      if (c) redisFree(c);
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    ASSERT_NE(sync_, nullptr) << "redis-server did not start";
  }
  void TearDown() override {
    if (sync_) redisFree(sync_);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  std::string sync_str(const char* command) {
    auto* r = static_cast<redisReply*>(redisCommand(sync_, command));
    std::string v = r && r->str ? std::string(r->str, r->len) : "";
    if (r) freeReplyObject(r);
    return v;
  }
  template <typename F>
  bool run_until(boost::asio::io_context& io, F done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.restart();
      io.run_for(std::chrono::milliseconds(10));
    }
    return done();
  }

  int port_ = 0;
  pid_t pid_ = -1;
  redisContext* sync_ = nullptr;
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

// sd_notify helpers against a fake NOTIFY_SOCKET (what systemd listens on).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "util/systemd.h"

namespace sd = pgcohere::util::systemd;

namespace {

class FakeSystemd : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = "/tmp/pgcohere-notify-" + std::to_string(getpid());
    unlink(path_.c_str());
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    ASSERT_GE(fd_, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    ASSERT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    setenv("NOTIFY_SOCKET", path_.c_str(), 1);
  }
  void TearDown() override {
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    close(fd_);
    unlink(path_.c_str());
  }
  std::string receive() {
    char buf[512];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }
  std::string path_;
  int fd_ = -1;
};

}  // namespace

TEST_F(FakeSystemd, ReadyReloadingStopping) {
  EXPECT_TRUE(sd::notify_ready());
  std::string m = receive();
  EXPECT_NE(m.find("READY=1"), std::string::npos);
  EXPECT_NE(m.find("MAINPID=" + std::to_string(getpid())), std::string::npos);
  EXPECT_TRUE(sd::notify_reloading());
  m = receive();
  EXPECT_NE(m.find("RELOADING=1"), std::string::npos);
  EXPECT_NE(m.find("MONOTONIC_USEC="), std::string::npos);
  EXPECT_TRUE(sd::notify_stopping());
  EXPECT_NE(receive().find("STOPPING=1"), std::string::npos);
  EXPECT_TRUE(sd::notify_status("draining"));
  EXPECT_EQ(receive(), "STATUS=draining");
}

TEST_F(FakeSystemd, WatchdogKeepsPingingFromTheLoop) {
  setenv("WATCHDOG_USEC", "20000", 1);  // 20 ms: pings every 10 ms
  setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  ASSERT_TRUE(sd::watchdog_interval());
  EXPECT_EQ(sd::watchdog_interval()->count(), 20000);
  boost::asio::io_context io;
  sd::WatchdogService wd(io);
  wd.start();
  int pings = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (pings < 3 && std::chrono::steady_clock::now() < deadline) {
    io.run_for(std::chrono::milliseconds(5));
    for (std::string m = receive(); !m.empty(); m = receive())
      if (m == "WATCHDOG=1") ++pings;
  }
  EXPECT_GE(pings, 3);
  wd.stop();
  io.run_for(std::chrono::milliseconds(1));
}

TEST(Systemd, NoOpsOutsideSystemd) {
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  EXPECT_FALSE(sd::notify_ready());
  EXPECT_FALSE(sd::notify_watchdog());
  EXPECT_FALSE(sd::watchdog_interval());
  boost::asio::io_context io;
  sd::WatchdogService wd(io);
  wd.start();  // nothing armed
  EXPECT_EQ(io.poll(), 0u);
}

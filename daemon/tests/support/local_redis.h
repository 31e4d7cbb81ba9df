// A redis-server of the test's own on a free loopback port (no persistence, no log file),
// with a synchronous hiredis connection to it for the test's own checks; killed with the
// object. Tests that need a real Redis use it instead of a mock.
#pragma once

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace pgcohere::testing_support {

// A loopback TCP port nobody listens on now, below the kernel's ephemeral range: outgoing
// connections take their local port from that range, and one could take a kernel-picked
// port before the server binds it.
inline int free_port() {
  int ephemeral_start = 32768;
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(f, "%d", &ephemeral_start) != 1) ephemeral_start = 32768;
    std::fclose(f);
  }
  std::random_device seed;
  std::uniform_int_distribution<int> pick(std::max(1024, ephemeral_start - 16384), ephemeral_start - 1);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    int port = pick(seed);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    bool bound = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    if (bound) return port;
  }
  return -1;
}

class LocalRedis {
 public:
  LocalRedis() = default;
  LocalRedis(const LocalRedis&) = delete;
  LocalRedis& operator=(const LocalRedis&) = delete;
  ~LocalRedis() {
    if (sync_) redisFree(sync_);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // Starts it, with `extra` redis-server arguments; false when it did not come up in 5 s.
  bool start(std::vector<std::string> extra = {}) {
    port_ = free_port();
    if (port_ < 0) return false;
    std::vector<std::string> args{"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--logfile", "/dev/null"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&pid_, "redis-server", nullptr, nullptr, argv.data(), environ) != 0) return false;
    for (int i = 0; i < 200 && !sync_; ++i) {
      redisContext* c = redisConnect("127.0.0.1", port_);
      if (c && !c->err) {
        sync_ = c;
        break;
      }
      if (c) redisFree(c);
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return sync_ != nullptr;
  }
  int port() const { return port_; }
  redisContext* sync() const { return sync_; }

 private:
  int port_ = 0;
  pid_t pid_ = -1;
  redisContext* sync_ = nullptr;
};

}  // namespace pgcohere::testing_support

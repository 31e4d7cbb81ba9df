// The Prometheus scrape endpoint: a small Boost.Beast HTTP/1.1 server on the daemon's
// io_context that answers GET /metrics with the registry's text exposition.
#pragma once

#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>

#include "app/service.h"

namespace pgcohere::metrics {

// Owned by a std::shared_ptr: its accept loop and each scrape connection hold a shared_ptr
// to it while they run (docs/architecture.md, "Threads and lifetimes"), so the owner ends
// them with stop(); the server is freed when the last of them has returned.
class MetricsHttpServer : public std::enable_shared_from_this<MetricsHttpServer> {
 public:
  using Renderer = std::function<std::string()>;

  // By default serves metrics::registry().render().
  explicit MetricsHttpServer(boost::asio::io_context& io, Renderer render = {});
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // Binds addr:port (port 0 picks a free port; see port()) and starts accepting.
  // Throws boost::system::system_error when the address cannot be bound, and
  // std::logic_error when the server is not owned by a std::shared_ptr.
  void start(const std::string& addr, std::uint16_t port);
  // Closes the listener and every open scrape connection. Idempotent.
  void stop();
  bool running() const;
  // The bound port, 0 when not running.
  std::uint16_t port() const;

 private:
  static boost::asio::awaitable<void> accept_loop(std::shared_ptr<MetricsHttpServer> self, std::uint64_t epoch);
  static boost::asio::awaitable<void> serve(std::shared_ptr<MetricsHttpServer> self, std::uint64_t epoch,
                                            std::shared_ptr<boost::beast::tcp_stream> stream);

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  Renderer render_;
  // Bumped by start() and stop(): coroutines of an earlier start() end at their next wake-up.
  std::uint64_t epoch_ = 0;
  bool running_ = false;
  bool at_cap_ = false;  // warned about the connection cap
  std::uint16_t port_ = 0;
  std::list<std::weak_ptr<boost::beast::tcp_stream>> connections_;
};

// The app Service: serves [pgcohered] metrics_addr:metrics_port (metrics_port = 0: off) and
// moves to a new address on reload, keeping the old one if the new one cannot be bound.
class MetricsService : public app::Service {
 public:
  MetricsService(boost::asio::io_context& io, const config::Config& config);
  const char* name() const override { return "metrics http"; }
  void start() override;
  void stop() override;
  void reload(const config::Config& config) override;
  std::uint16_t port() const { return server_ ? server_->port() : 0; }

 private:
  boost::asio::io_context& io_;
  std::string addr_;
  int port_;
  std::shared_ptr<MetricsHttpServer> server_;
};

}  // namespace pgcohere::metrics

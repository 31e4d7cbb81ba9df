// The Prometheus scrape endpoint: a small Boost.Beast HTTP/1.1 server on the daemon's
// io_context that answers GET /metrics with the registry's text exposition.
#pragma once

#include <utility>

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "app/service.h"

namespace pgcohere::metrics {

class MetricsHttpServer {
 public:
  using Renderer = std::function<std::string()>;

  // By default serves metrics::registry().render().
  explicit MetricsHttpServer(boost::asio::io_context& io, Renderer render = {});
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // Binds addr:port (port 0 picks a free port; see port()) and starts accepting.
  // Throws boost::system::system_error when the address cannot be bound.
  void start(const std::string& addr, std::uint16_t port);
  // Closes the listener and every open scrape connection. Idempotent.
  void stop();
  bool running() const;
  // The bound port, 0 when not running.
  std::uint16_t port() const;

  struct State;  // shared with the connection coroutines; defined in the .cpp

 private:
  boost::asio::io_context& io_;
  Renderer render_;
  std::shared_ptr<State> state_;
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
  std::unique_ptr<MetricsHttpServer> server_;
};

}  // namespace pgcohere::metrics

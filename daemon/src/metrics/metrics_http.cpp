// GET /metrics over HTTP/1.1 with keep-alive; anything else gets 404 or 405.
#include "metrics/metrics_http.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <list>
#include <stdexcept>

#include "metrics/process.h"
#include "metrics/registry.h"
#include "util/log.h"

namespace pgcohere::metrics {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {
constexpr auto kIdleTimeout = std::chrono::seconds(30);
constexpr std::uint32_t kHeaderLimit = 8192;
// Scrapers are few; a flood of idle connections must not pile up coroutines and fds.
constexpr std::size_t kMaxConnections = 64;

http::response<http::string_body> respond(const http::request<http::empty_body>& req,
                                          const MetricsHttpServer::Renderer& render) {
  http::response<http::string_body> res;
  res.version(req.version());
  res.keep_alive(req.keep_alive());
  res.set(http::field::server, "pgcohered");
  std::string_view target(req.target().data(), req.target().size());
  std::string_view path = target.substr(0, target.find('?'));
  if (path != "/metrics") {
    res.result(http::status::not_found);
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = "not found; metrics are at /metrics\n";
  } else if (req.method() != http::verb::get && req.method() != http::verb::head) {
    res.result(http::status::method_not_allowed);
    res.set(http::field::allow, "GET, HEAD");
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = "method not allowed\n";
  } else {
    res.result(http::status::ok);
    res.set(http::field::content_type,
            beast::string_view(metrics::kContentType.data(), metrics::kContentType.size()));
    res.body() = render();
  }
  res.prepare_payload();
  if (req.method() == http::verb::head) res.body().clear();
  return res;
}

}  // namespace

MetricsHttpServer::MetricsHttpServer(asio::io_context& io, Renderer render)
    : io_(io), acceptor_(io), render_(std::move(render)) {
  if (!render_) render_ = [] { return metrics::registry().render(); };
}

MetricsHttpServer::~MetricsHttpServer() { stop(); }

void MetricsHttpServer::start(const std::string& addr, std::uint16_t port) {
  if (weak_from_this().expired())
    throw std::logic_error("MetricsHttpServer must be owned by a std::shared_ptr (std::make_shared)");
  stop();
  tcp::endpoint endpoint;
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(addr == "*" ? "0.0.0.0" : addr, ec);
  if (!ec) {
    endpoint = tcp::endpoint(ip, port);
  } else {
    // A host name such as "localhost": its first address (start-up and reload only).
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(addr, std::to_string(port));
    endpoint = results.begin()->endpoint();
  }
  try {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
  } catch (...) {
    acceptor_.close(ec);
    throw;
  }
  port_ = acceptor_.local_endpoint().port();
  running_ = true;
  at_cap_ = false;
  asio::co_spawn(io_, accept_loop(shared_from_this(), ++epoch_), asio::detached);
  PGC_LOG_INFO << "metrics: serving http://" << addr << ":" << port_ << "/metrics";
}

void MetricsHttpServer::stop() {
  if (!running_) return;
  running_ = false;
  ++epoch_;  // the accept loop and keep-alive connections of this listening end
  port_ = 0;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  for (auto& weak : connections_)
    if (auto stream = weak.lock()) stream->socket().close(ignored);
  connections_.clear();
}

bool MetricsHttpServer::running() const { return running_; }

std::uint16_t MetricsHttpServer::port() const { return port_; }

// Static, with the server passed as `self` (taken by co_spawn's caller, so it holds the
// server even before the coroutine first runs): the loop keeps the server alive while it
// runs. It ends when stop() closes the acceptor; `epoch` tells it apart from the loop of a
// later start() on the same server, which reopens the acceptor.
asio::awaitable<void> MetricsHttpServer::accept_loop(std::shared_ptr<MetricsHttpServer> self,
                                                     std::uint64_t epoch) {
  auto executor = co_await asio::this_coro::executor;
  while (epoch == self->epoch_) {
    boost::system::error_code ec;
    tcp::socket socket = co_await self->acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (epoch != self->epoch_) break;
    if (ec) {
      // EMFILE and friends: back off a little instead of spinning.
      PGC_LOG_WARN << "metrics http: accept failed: " << ec.message();
      asio::steady_timer pause(executor, std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    self->connections_.remove_if([](const auto& w) { return w.expired(); });
    if (self->connections_.size() >= kMaxConnections) {
      if (!self->at_cap_) {
        PGC_LOG_WARN << "metrics http: " << kMaxConnections << " connections open, refusing more";
      }
      self->at_cap_ = true;
      socket.close(ec);
      continue;
    }
    self->at_cap_ = false;
    auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
    self->connections_.push_back(stream);
    asio::co_spawn(executor, serve(self, epoch, std::move(stream)), asio::detached);
  }
}

// `self` holds the server while the connection is open; stop() closes the socket, which ends it.
asio::awaitable<void> MetricsHttpServer::serve(std::shared_ptr<MetricsHttpServer> self, std::uint64_t epoch,
                                               std::shared_ptr<beast::tcp_stream> stream) {
  beast::flat_buffer buffer;
  try {
    for (;;) {
      http::request_parser<http::empty_body> parser;
      parser.header_limit(kHeaderLimit);
      stream->expires_after(kIdleTimeout);
      co_await http::async_read(*stream, buffer, parser, asio::use_awaitable);
      auto res = respond(parser.get(), self->render_);
      bool keep_alive = res.keep_alive();
      stream->expires_after(kIdleTimeout);
      if (parser.get().method() == http::verb::head) {
        http::response_serializer<http::string_body> sr(res);
        co_await http::async_write_header(*stream, sr, asio::use_awaitable);
      } else {
        co_await http::async_write(*stream, res, asio::use_awaitable);
      }
      if (!keep_alive || epoch != self->epoch_) break;
    }
  } catch (const boost::system::system_error& e) {
    if (e.code() != http::error::end_of_stream && e.code() != asio::error::operation_aborted &&
        e.code() != beast::error::timeout && e.code() != asio::error::connection_reset) {
      PGC_LOG_DEBUG << "metrics http: connection ended: " << e.code().message();
    }
  } catch (const std::exception& e) {
    PGC_LOG_WARN << "metrics http: " << e.what();
  }
  boost::system::error_code ignored;
  stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream->socket().close(ignored);
}

MetricsService::MetricsService(asio::io_context& io, const config::Config& config)
    : io_(io), addr_(config.daemon.metrics_addr), port_(config.daemon.metrics_port) {
  metrics::registry()
      .gauge("build_info", "pgcohered version; always 1.", {{"version", PGCOHERE_VERSION}})
      .set(1);
  metrics::register_process_metrics();
}

void MetricsService::start() {
  if (port_ == 0) {
    PGC_LOG_INFO << "metrics: disabled (metrics_port = 0)";
    return;
  }
  server_ = std::make_shared<MetricsHttpServer>(io_);
  // A port we cannot bind at start-up is a configuration error: fail loudly.
  try {
    server_->start(addr_, static_cast<std::uint16_t>(port_));
  } catch (const std::exception& e) {
    server_.reset();
    throw std::runtime_error("metrics: cannot listen on " + addr_ + ":" + std::to_string(port_) +
                             " (metrics_addr, metrics_port): " + e.what());
  }
}

void MetricsService::stop() {
  if (server_) server_->stop();
  server_.reset();
}

void MetricsService::reload(const config::Config& config) {
  const std::string& addr = config.daemon.metrics_addr;
  int port = config.daemon.metrics_port;
  if (addr == addr_ && port == port_) return;
  if (port == 0) {
    stop();
    PGC_LOG_INFO << "metrics: disabled by reload";
  } else {
    auto next = std::make_shared<MetricsHttpServer>(io_);
    try {
      if (server_ && server_->port() == port) server_->stop();  // same port, new address
      next->start(addr, static_cast<std::uint16_t>(port));
    } catch (const std::exception& e) {
      PGC_LOG_ERROR << "metrics: cannot listen on " << addr << ":" << port << ": " << e.what()
                    << "; keeping " << addr_ << ":" << port_;
      if (server_ && !server_->running() && port_ != 0) {
        try {
          server_->start(addr_, static_cast<std::uint16_t>(port_));
        } catch (const std::exception& again) {
          PGC_LOG_ERROR << "metrics: cannot listen on " << addr_ << ":" << port_ << " again: "
                        << again.what();
        }
      }
      return;
    }
    stop();
    server_ = std::move(next);
  }
  addr_ = addr;
  port_ = port;
}

}  // namespace pgcohere::metrics

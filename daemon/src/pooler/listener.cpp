// The listener (see listener.h).
#include "pooler/listener.h"

#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/socket_base.hpp>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "util/log.h"

namespace pgcohere::pooler {

namespace asio = boost::asio;
using asio::ip::tcp;

// PgBouncer warns the same way when it cannot raise the limit.
void ensure_fd_limit(int max_client_conn) {
  const rlim_t want = static_cast<rlim_t>(max_client_conn) + 1024;  // servers, Redis, files
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur >= want) return;
  rlimit raised = lim;
  raised.rlim_cur = lim.rlim_max == RLIM_INFINITY ? want : std::min(want, lim.rlim_max);
  if (raised.rlim_cur > lim.rlim_cur && setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  if (lim.rlim_cur < want) {
    PGC_LOG_WARN << "open files limit " << lim.rlim_cur << " is below max_client_conn + 1024 (" << want
                 << "): raise LimitNOFILE / ulimit -n, or clients will be refused";
  }
}

Listener::Listener(asio::io_context& io, OnAccept on_accept) : io_(io), on_accept_(std::move(on_accept)) {}

void Listener::start(const config::DaemonSettings& d) {
  ensure_fd_limit(d.max_client_conn);
  tcp::endpoint ep(asio::ip::make_address(d.listen_addr == "*" ? "0.0.0.0" : d.listen_addr),
                   static_cast<unsigned short>(d.listen_port));
  acceptor_ = std::make_unique<tcp::acceptor>(io_);
  acceptor_->open(ep.protocol());
  acceptor_->set_option(asio::socket_base::reuse_address(true));
  if (d.so_reuseport) {
    // PgBouncer's so_reuseport: several pgcohered processes share one port, the kernel
    // spreads new connections among them (each has its own pools).
    int one = 1;
    if (::setsockopt(acceptor_->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      throw std::runtime_error(std::string("so_reuseport: ") + std::strerror(errno));
  }
  acceptor_->bind(ep);
  acceptor_->listen(d.listen_backlog);
  PGC_LOG_INFO << "pooler listening on " << d.listen_addr << ":" << d.listen_port << " (pool_mode " << d.pool_mode
               << ")";
  accept_next();
}

void Listener::stop() {
  stopped_ = true;
  if (acceptor_) {
    boost::system::error_code ec;
    acceptor_->close(ec);
  }
}

void Listener::accept_next() {
  acceptor_->async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || stopped_) return;
      PGC_LOG_WARN << "accept failed: " << ec.message();
    } else {
      on_accept_(std::move(socket));
    }
    if (!stopped_) accept_next();
  });
}

void Listener::remove_cancel_key(std::uint64_t key, ClientConn* c) {
  auto it = by_cancel_key_.find(key);
  if (it != by_cancel_key_.end() && it->second == c) by_cancel_key_.erase(it);
}

ClientConn* Listener::find_by_cancel_key(std::uint64_t key) const {
  auto it = by_cancel_key_.find(key);
  return it == by_cancel_key_.end() ? nullptr : it->second;
}

}  // namespace pgcohere::pooler

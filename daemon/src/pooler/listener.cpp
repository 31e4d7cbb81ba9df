// The listener (see listener.h).
#include "pooler/listener.h"

#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "net/unix_socket.h"
#include "pooler/client_conn.h"
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

Listener::~Listener() = default;

void Listener::start(const config::DaemonSettings& d) {
  ensure_fd_limit(d.max_client_conn);
  // TCP first: without so_reuseport a second pooler on the port fails there, with the
  // message that says so.
  if (!d.listen_addr.empty()) listen_tcp(d);
  if (!d.unix_socket_dir.empty()) listen_unix_socket(d);
}

void Listener::listen_tcp(const config::DaemonSettings& d) {
  tcp::endpoint ep(asio::ip::make_address(d.listen_addr == "*" ? "0.0.0.0" : d.listen_addr),
                   static_cast<unsigned short>(d.listen_port));
  tcp_ = std::make_unique<Acceptor>(io_);
  tcp_->open(asio::generic::stream_protocol(ep.protocol().family(), ep.protocol().protocol()));
  tcp_->set_option(asio::socket_base::reuse_address(true));
  if (d.so_reuseport) {
    // PgBouncer's so_reuseport: several pgcohered processes share one port, the kernel
    // spreads new connections among them (each has its own pools).
    int one = 1;
    if (::setsockopt(tcp_->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      throw std::runtime_error(std::string("so_reuseport: ") + std::strerror(errno));
  }
  tcp_->bind(asio::generic::stream_protocol::endpoint(ep));
  tcp_->listen(d.listen_backlog);
  PGC_LOG_INFO << "pooler listening on " << d.listen_addr << ":" << d.listen_port << " (pool_mode " << d.pool_mode
               << ")";
  accept_next(*tcp_, false);
}

void Listener::listen_unix_socket(const config::DaemonSettings& d) {
  std::string path = net::unix_socket_path(d.unix_socket_dir, d.listen_port);
  auto acceptor = std::make_unique<Acceptor>(io_);
  try {
    net::listen_unix(*acceptor, path, d.unix_socket_mode, d.unix_socket_group, d.listen_backlog);
  } catch (const net::SocketInUse& e) {
    // so_reuseport processes share the TCP port, but a socket file has one owner: the
    // first process keeps it (PgBouncer wants a unix_socket_dir per process). In a rolling
    // restart the old process gives it up when it stops, and this one then takes it.
    if (!d.so_reuseport) throw;
    if (!unix_retry_) {
      PGC_LOG_WARN << e.what() << "; this so_reuseport process listens on TCP only until it is free";
      unix_retry_ = std::make_unique<asio::steady_timer>(io_);
    }
    unix_retry_->expires_after(std::chrono::seconds(1));
    unix_retry_->async_wait([this, d](const boost::system::error_code& ec) {
      if (!ec && !stopped_ && !unix_given_up_) listen_unix_socket(d);
    });
    return;
  }
  unix_ = std::move(acceptor);
  if (path[0] != '\0') unix_path_ = path;
  PGC_LOG_INFO << "pooler listening on unix socket " << d.unix_socket_dir << "/.s.PGSQL." << d.listen_port;
  accept_next(*unix_, true);
}

void Listener::stop() {
  stopped_ = true;
  if (unix_retry_) unix_retry_->cancel();
  boost::system::error_code ec;
  if (tcp_) tcp_->close(ec);
  close_unix();
}

void Listener::close_unix() {
  boost::system::error_code ec;
  if (unix_) unix_->close(ec);
  if (!unix_path_.empty()) net::remove_unix_socket(unix_path_);
  unix_path_.clear();
}

void Listener::stop_accepting(bool keep_unix) {
  boost::system::error_code ec;
  if (tcp_ && tcp_->is_open()) {
    accept_queued(*tcp_, false);
    tcp_->close(ec);
  }
  if (!keep_unix) {
    unix_given_up_ = true;
    if (unix_retry_) unix_retry_->cancel();
  }
  if (!keep_unix && unix_ && unix_->is_open()) {
    accept_queued(*unix_, true);
    close_unix();
  }
}

// Takes every connection already in the kernel's queue for this socket, without waiting.
// One arriving between the last accept and the close can still be reset: Linux moves
// queued connections to another so_reuseport socket only with net.ipv4.tcp_migrate_req = 1.
void Listener::accept_queued(Acceptor& acceptor, bool unix_socket) {
  boost::system::error_code ec;
  acceptor.non_blocking(true, ec);
  while (!ec) {
    Socket socket(io_);
    acceptor.accept(socket, ec);
    if (!ec) on_accept_(std::move(socket), unix_socket);
  }
}

void Listener::accept_next(Acceptor& acceptor, bool unix_socket) {
  acceptor.async_accept([this, &acceptor, unix_socket](const boost::system::error_code& ec, Socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || stopped_ || !acceptor.is_open()) return;
      PGC_LOG_WARN << "accept failed: " << ec.message();
    } else {
      on_accept_(std::move(socket), unix_socket);
    }
    // stop_accepting() may have closed this one socket while the others go on.
    if (!stopped_ && acceptor.is_open()) accept_next(acceptor, unix_socket);
  });
}

void Listener::track(ClientConn* c, bool alive) {
  if (alive) {
    all_clients_.insert(*c);
    logins_.insert(*c);
  } else {
    all_clients_.erase(*c);
    logins_.erase(*c);
  }
}

void Listener::logged_in(ClientConn* c) { logins_.erase(*c); }

void Listener::remove_cancel_key(std::uint64_t key, ClientConn* c) {
  auto it = by_cancel_key_.find(key);
  if (it != by_cancel_key_.end() && it->second == c) by_cancel_key_.erase(it);
}

ClientConn* Listener::find_by_cancel_key(std::uint64_t key) const {
  auto it = by_cancel_key_.find(key);
  return it == by_cancel_key_.end() ? nullptr : it->second;
}

}  // namespace pgcohere::pooler

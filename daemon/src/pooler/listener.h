// The pooler's front door (PgBouncer's pooler.c): the listening socket and its accept
// loop, the open-files limit that max_client_conn needs, max_client_conn itself, and the
// cancel keys that route a CancelRequest to the client it names.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <unordered_map>

#include "config/config.h"

namespace pgcohere::pooler {

class ClientConn;

// Raises the soft RLIMIT_NOFILE to max_client_conn + 1024 where the hard limit allows,
// and warns when it cannot (every client and server connection is a file descriptor).
void ensure_fd_limit(int max_client_conn);

// Whether a new client may log in, counting every connection that exists, logged in or
// still logging in, the new one included (PgBouncer's max_client_conn).
inline bool client_admitted(std::size_t connections, int max_client_conn) {
  return static_cast<long long>(connections) <= max_client_conn;
}

// The cancel key of a client: BackendKeyData's pid and key as one number.
inline std::uint64_t cancel_key(std::int32_t pid, std::int32_t key) {
  return (std::uint64_t(std::uint32_t(pid)) << 32) | std::uint32_t(key);
}

class Listener {
 public:
  // Called with each accepted socket.
  using OnAccept = std::function<void(boost::asio::ip::tcp::socket)>;
  Listener(boost::asio::io_context& io, OnAccept on_accept);

  // Binds listen_addr:listen_port (so_reuseport, listen_backlog) and starts accepting.
  void start(const config::DaemonSettings& d);
  void stop();

  // Every client connection, logged in or not (max_client_conn, shutdown, the janitor).
  void track(ClientConn* c, bool alive) {
    if (alive) all_clients_.insert(c);
    else all_clients_.erase(c);
  }
  const std::set<ClientConn*>& all_clients() const { return all_clients_; }

  // Logged-in clients by cancel key.
  void add_cancel_key(std::uint64_t key, ClientConn* c) { by_cancel_key_[key] = c; }
  void remove_cancel_key(std::uint64_t key, ClientConn* c);
  ClientConn* find_by_cancel_key(std::uint64_t key) const;
  std::size_t logged_in_count() const { return by_cancel_key_.size(); }

 private:
  void accept_next();

  boost::asio::io_context& io_;
  OnAccept on_accept_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  bool stopped_ = false;
  std::set<ClientConn*> all_clients_;
  std::unordered_map<std::uint64_t, ClientConn*> by_cancel_key_;
};

}  // namespace pgcohere::pooler

// The pooler's front door (PgBouncer's pooler.c): the listening sockets (TCP and the Unix
// socket) and their accept loops, the open-files limit that max_client_conn needs, max_client_conn itself, and the
// cancel keys that route a CancelRequest to the client it names.
#pragma once

#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>

#include "config/config.h"
#include "net/stream.h"
#include "net/unix_socket.h"
#include "pooler/client_list.h"

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
  using Socket = net::Stream::Socket;
  // Called with each accepted socket; unix_socket: it came through the Unix socket.
  using OnAccept = std::function<void(Socket, bool unix_socket)>;
  Listener(boost::asio::io_context& io, OnAccept on_accept);
  ~Listener();  // in listener.cpp, where ClientConn (the registry's element) is complete

  // Binds listen_addr:listen_port (so_reuseport, listen_backlog) and the Unix socket in
  // unix_socket_dir (unix_socket_mode, unix_socket_group), and starts accepting.
  void start(const config::DaemonSettings& d);
  void stop();
  // SHUTDOWN WAIT_FOR_CLIENTS: the TCP socket is closed at once, so the kernel gives new
  // connections to the other so_reuseport processes; connections the kernel had already
  // queued for this one are accepted first (closing the socket would reset them).
  // keep_unix: the Unix socket stays open (a peered process's private address, for
  // forwarded cancels and the console).
  void stop_accepting(bool keep_unix);

  // Every client connection, logged in or not (max_client_conn, shutdown, the console).
  void track(ClientConn* c, bool alive);
  const AllClients& all_clients() const { return all_clients_; }
  // Those not logged in yet, the oldest first (the janitor's client_login_timeout).
  void logged_in(ClientConn* c);
  const LoginClients& logins() const { return logins_; }

  // Logged-in clients by cancel key.
  void add_cancel_key(std::uint64_t key, ClientConn* c) { by_cancel_key_[key] = c; }
  void remove_cancel_key(std::uint64_t key, ClientConn* c);
  ClientConn* find_by_cancel_key(std::uint64_t key) const;
  std::size_t logged_in_count() const { return by_cancel_key_.size(); }

 private:
  using Acceptor = net::StreamAcceptor;
  void listen_tcp(const config::DaemonSettings& d);
  void listen_unix_socket(const config::DaemonSettings& d);
  void accept_next(Acceptor& acceptor, bool unix_socket);
  void accept_queued(Acceptor& acceptor, bool unix_socket);
  void close_unix();

  boost::asio::io_context& io_;
  OnAccept on_accept_;
  std::unique_ptr<Acceptor> tcp_, unix_;
  std::unique_ptr<boost::asio::steady_timer> unix_retry_;  // while another process owns the socket file
  std::string unix_path_;  // the socket file to remove at stop
  bool stopped_ = false;
  bool unix_given_up_ = false;  // stop_accepting() closed it: no retry takes it again
  AllClients all_clients_;
  LoginClients logins_;
  std::unordered_map<std::uint64_t, ClientConn*> by_cancel_key_;
};

}  // namespace pgcohere::pooler

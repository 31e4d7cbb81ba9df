// One connection to PostgreSQL: connect and log in, then forward the server's answers to
// whichever client is linked, and tell the pool when it is free again.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "auth/exchange.h"
#include "net/buffer.h"
#include "net/stream.h"
#include "protocol/frame.h"
#include "session/server_session.h"

namespace pgcohere::pooler {

class ClientConn;
class Pooler;
class PoolEntry;

class ServerConn : public std::enable_shared_from_this<ServerConn> {
 public:
  // being_canceled: clean, but a cancel request forwarded for its last client is still
  // on its way to PostgreSQL; testing: running server_check_query before reuse.
  enum class State { connecting, idle, active, resetting, being_canceled, testing, closed };
  using Clock = std::chrono::steady_clock;

  ServerConn(Pooler& pooler, PoolEntry& entry);
  ~ServerConn();
  ServerConn(const ServerConn&) = delete;
  ServerConn& operator=(const ServerConn&) = delete;

  void start();
  void close();

  // Pool bookkeeping (called by ClientConn and the pooler).
  void link(const std::shared_ptr<ClientConn>& client);
  void unlink();
  // The linked client went away: release, reset or close depending on state and mode.
  void client_gone();
  void send_cancel();
  // server_check_query (the pool decides when; see Pool::set_checker).
  void start_check();
  // Idle long enough (server_check_delay) that a client gets it only after a check.
  bool check_due() const { return check_due_; }
  void set_check_due() { check_due_ = true; }

  net::Stream& socket() { return socket_; }
  session::ServerSession& session() { return session_; }
  PoolEntry& entry() { return entry_; }
  State state() const { return state_; }
  void set_state(State s) { state_ = s; }
  int32_t backend_pid() const { return backend_pid_; }
  Clock::time_point connected_at() const { return connected_at_; }
  std::chrono::system_clock::time_point connect_wall() const { return connect_wall_; }
  Clock::time_point last_used() const { return last_used_; }
  Clock::time_point last_activity() const { return last_activity_; }
  const std::shared_ptr<ClientConn>& client() const { return client_; }
  // Parameter sync bookkeeping (see ClientConn::sync_parameters).
  bool synced(uint64_t client_fingerprint, uint64_t server_version) const {
    return synced_fingerprint_ == client_fingerprint && synced_version_ == server_version && synced_version_ != 0;
  }
  void mark_synced(uint64_t client_fingerprint, uint64_t server_version) {
    synced_fingerprint_ = client_fingerprint;
    synced_version_ = server_version;
  }
  // The linked client has not used this connection (it only needed a login): back to the
  // pool in any pool mode.
  void give_back_unused();
  // A client's batch is on its way to the server: SHOW STATS query time starts (if idle).
  void query_sent() {
    if (query_started_ == Clock::time_point{}) query_started_ = Clock::now();
  }
  // RECONNECT: close it when it is next released instead of reusing it (SHOW SERVERS close_needed).
  void set_close_needed() { close_needed_ = true; }
  bool close_needed() const { return close_needed_; }
  // This end of the TCP connection (SHOW SERVERS local_addr, local_port); "" / 0 otherwise.
  const std::string& local_addr() const { return local_addr_; }
  int local_port() const { return local_port_; }
  // Called after the client finished writing a batch: maybe the connection is free now.
  void maybe_release();
  // Never lent again: closed now if idle, else when released (a reload changed server_tls_*).
  void retire_when_released();

 private:
  boost::asio::awaitable<void> run();
  boost::asio::awaitable<std::string> connect_and_login();
  // SSLRequest, then TLS or plain text per server_tls_sslmode; "" or why it failed.
  boost::asio::awaitable<std::string> negotiate_tls(const std::string& host);
  boost::asio::awaitable<void> read_loop();
  void finish(const std::string& why);
  // A clean connection goes back to the pool (or waits for its cancels, or retires).
  void give_back(Clock::time_point now = Clock::now());
  void cancel_finished(bool certain);

  Pooler& pooler_;
  PoolEntry& entry_;
  net::Stream socket_;  // TCP or Unix socket, maybe inside TLS
  boost::asio::generic::stream_protocol::endpoint endpoint_;
  boost::asio::steady_timer deadline_;
  session::ServerSession session_;
  protocol::FrameDecoder decoder_;
  net::ReadBuffer in_;
  std::shared_ptr<ClientConn> client_;
  std::optional<auth::ServerAuth> auth_;
  State state_ = State::connecting;
  int32_t backend_pid_ = 0, backend_key_ = 0;
  bool finished_ = false;
  int cancels_in_flight_ = 0;
  bool retire_ = false;      // a cancel's fate is unknown: never reuse this connection
  bool check_due_ = false;
  bool close_needed_ = false;
  std::string local_addr_;
  int local_port_ = 0;
  bool check_failed_ = false;
  Clock::time_point connected_at_{}, last_used_{}, last_activity_{};
  Clock::time_point query_started_{};  // first unanswered batch sent (SHOW STATS query time)
  uint64_t synced_fingerprint_ = 0, synced_version_ = 0;
  std::chrono::system_clock::time_point connect_wall_ = std::chrono::system_clock::now();
};

}  // namespace pgcohere::pooler

// A libpq connection driven by Asio coroutines: non-blocking connect, queries, and waiting
// for notifications. Used for the LISTEN connection of each database (direct to
// PostgreSQL, not through the pool).
#pragma once

#include <libpq-fe.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pgcohere::invalidation {

struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

struct Notification {
  std::string channel;
  std::string payload;
  int sender_pid = 0;
};

class PgConnection {
 public:
  using NotifyHandler = std::function<void(Notification)>;

  explicit PgConnection(boost::asio::io_context& io) : io_(io), timer_(io) {}
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;
  ~PgConnection() { close(); }

  // Connects without blocking the loop. Returns "" or the error message.
  boost::asio::awaitable<std::string> connect(const std::map<std::string, std::string>& params);
  // Runs one statement; rows of the last result. On error returns nullopt and sets `error`
  // (and `sqlstate` when the server gave one). Notifications that arrive meanwhile are
  // buffered and come out of wait().
  boost::asio::awaitable<std::optional<std::vector<std::vector<std::string>>>> query(
      const std::string& sql, std::string* error, std::string* sqlstate = nullptr);
  // Waits until data arrives, `deadline` passes, or wake() is called; then hands every
  // buffered notification to `handler`, and after each run of one or more of them calls
  // `batch_done` (if set), so that the caller can send their work out together. Returns
  // false when the connection is lost.
  boost::asio::awaitable<bool> wait(std::optional<std::chrono::steady_clock::time_point> deadline,
                                    const NotifyHandler& handler, const std::function<void()>& batch_done = {});
  void wake();
  void close();

  bool is_open() const { return conn_ != nullptr; }
  std::string error_message() const;
  int backend_pid() const { return conn_ ? PQbackendPID(conn_) : 0; }
  PGconn* native() { return conn_; }

 private:
  boost::asio::awaitable<bool> wait_socket(bool for_write);
  void drain(const NotifyHandler& handler, const std::function<void()>& batch_done);

  boost::asio::io_context& io_;
  PGconn* conn_ = nullptr;
  std::unique_ptr<boost::asio::posix::stream_descriptor> sd_;
  boost::asio::steady_timer timer_;
  std::vector<Notification> buffered_;
  bool woken_ = false;
  bool waiting_ = false;  // inside wait(): only then may wake() or the timer cancel the socket wait
  // sd_ has waited for writability, so Asio keeps EPOLLOUT in its epoll registration; every
  // later re-arm of the read wait would then report the (always writable) socket once more,
  // an extra epoll_wait per notification. wait() registers the socket afresh first.
  bool waited_for_write_ = false;
};

// Quotes an SQL identifier (LISTEN's channel) the way PostgreSQL reads it back.
std::string quote_identifier(const std::string& name);

}  // namespace pgcohere::invalidation

// One hiredis async connection driven by an Asio io_context (hiredis 0.14 ships no Asio
// adapter), with reconnect and backoff. Commands are pipelined on the connection.
// Owned by a std::shared_ptr (docs/architecture.md, "Threads and lifetimes"): its timers
// and posted handlers hold a weak_ptr and do nothing once the client is gone.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "redis/reply.h"

struct redisAsyncContext;

namespace pgcohere::redis {

class AsyncClient : public std::enable_shared_from_this<AsyncClient> {
 public:
  using Callback = std::function<void(Reply)>;
  using StateHandler = std::function<void(bool up)>;

  AsyncClient(boost::asio::io_context& io, std::string host, int port, int db,
              std::string name = "redis");
  AsyncClient(const AsyncClient&) = delete;
  AsyncClient& operator=(const AsyncClient&) = delete;
  ~AsyncClient();

  // A command unanswered for `command_timeout`, or a connect that takes longer than
  // `connect_timeout`, drops the connection (pending commands fail and are retried by
  // their owners): a hung Redis is treated like a dead one. Zero disables.
  void set_timeouts(std::chrono::milliseconds connect_timeout, std::chrono::milliseconds command_timeout);
  // Connects now and reconnects with backoff whenever the link drops, until stop().
  // Throws std::logic_error if the client is not owned by a std::shared_ptr.
  void start();
  void stop();
  bool connected() const { return connected_; }
  // Drops the connection and reconnects (with backoff), for an owner that knows the link
  // is dead although the socket says nothing: a subscription that stopped delivering.
  void reconnect(const char* why);
  // Called on every transition (posted, never from inside hiredis).
  void on_state(StateHandler handler) { state_handler_ = std::move(handler); }

  // Sends a command. `done` always runs exactly once, never inside command() nor inside
  // hiredis: with the reply (right after hiredis has parsed the read that brought it), or
  // with an error reply (posted) when not connected or when the link drops.
  void command(std::vector<std::string> argv, Callback done);
  // Commands sent between cork() and the matching uncork() are written by uncork(), in one
  // write; otherwise they are written in a handler posted after the current one.
  void cork();
  void uncork();
  std::size_t in_flight() const { return in_flight_; }
  // (P)SUBSCRIBE: `on_message` runs (posted) for the confirmation and for every message,
  // until the connection drops; subscribe again after the next "up".
  void subscribe(std::vector<std::string> argv, Callback on_message);

  const std::string& host() const { return host_; }
  int port() const { return port_; }

 private:
  struct Events;
  static void on_connect(const redisAsyncContext* ac, int status);
  static void on_disconnect(const redisAsyncContext* ac, int status);
  static void on_reply(redisAsyncContext* ac, void* reply, void* privdata);
  static void on_message(redisAsyncContext* ac, void* reply, void* privdata);
  struct Completion {
    Callback done;
    Reply reply;
  };
  std::vector<Completion>* collected_ = nullptr;  // set while Events reads: on_reply collects
  std::size_t corked_ = 0;
  struct Subscription {
    AsyncClient* self;
    Callback handler;
  };
  std::vector<std::unique_ptr<Subscription>> subscriptions_;
  void connect_now();
  void schedule_reconnect();
  void set_state(bool up);
  void arm_watchdog();
  void drop_connection(const char* why);

  boost::asio::io_context& io_;
  std::string host_;
  int port_;
  int db_;
  std::string name_;
  redisAsyncContext* ac_ = nullptr;
  bool connected_ = false;
  bool stopping_ = true;
  std::size_t in_flight_ = 0;
  std::chrono::milliseconds backoff_{50};
  boost::asio::steady_timer reconnect_timer_;
  boost::asio::steady_timer watchdog_;
  std::chrono::milliseconds connect_timeout_{0}, command_timeout_{0};
  std::chrono::steady_clock::time_point connect_started_;
  std::deque<std::chrono::steady_clock::time_point> sent_at_;  // in-flight commands, oldest first
  StateHandler state_handler_;
};

Reply copy_reply(const void* hiredis_reply);

}  // namespace pgcohere::redis

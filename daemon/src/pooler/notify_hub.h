// LISTEN/NOTIFY for clients in transaction (and statement) pooling: one connection per
// database, apart from the pool, LISTENs on the union of its clients' channels, and every
// notification it receives goes to each client listening on that channel. A client's
// LISTEN and UNLISTEN never reach a pooled server connection (ClientConn answers them
// with this hub's help); delivery is ClientConn's (at once when it is between
// transactions, else at its next ReadyForQuery 'I'). docs/pooler.md, "LISTEN/NOTIFY".
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "notify/channel_registry.h"

namespace pgcohere::pooler {

class ClientConn;
class Pooler;
class PoolEntry;

class NotifyHub {
 public:
  using Done = std::function<void(std::string error)>;

  // `entry`: the pool whose target and server credentials the connection logs in with.
  NotifyHub(Pooler& pooler, PoolEntry& entry);
  ~NotifyHub();
  NotifyHub(const NotifyHub&) = delete;
  NotifyHub& operator=(const NotifyHub&) = delete;

  // Subscribes `client`; `done("")` once PostgreSQL listens on the channel (at once when
  // it already does), or done(error) when the connection cannot be made (the client is
  // then not subscribed). `done` may run before listen() returns.
  void listen(ClientConn& client, const std::string& channel, Done done);
  void unlisten(ClientConn& client, const std::string& channel);
  // UNLISTEN * and disconnect.
  void unlisten_all(ClientConn& client);
  void stop();

  const std::string& database() const { return database_; }
  std::size_t channel_count() const { return registry_.channel_count(); }
  std::size_t client_count() const { return registry_.client_count(); }
  std::uint64_t notifications() const { return notifications_; }
  std::uint64_t overflows() const { return overflows_; }
  bool connected() const { return connected_; }
  int backend_pid() const { return backend_pid_; }

 private:
  using Id = notify::ChannelRegistry::Id;
  struct InFlight {  // one Query sent on the connection, answered by one ReadyForQuery
    std::vector<std::pair<std::string, std::uint64_t>> listens;  // channel, generation
    std::string error;
  };

  boost::asio::awaitable<void> run();
  boost::asio::awaitable<std::string> connect_and_login();
  boost::asio::awaitable<std::string> read_loop();
  boost::asio::awaitable<void> write_loop();
  void send_listen(const std::vector<std::string>& channels);
  void send_query(const std::string& sql, InFlight what);
  void on_ready();  // ReadyForQuery: the oldest query in flight is answered
  void dispatch(int32_t pid, std::string_view channel, std::string_view payload);
  void finish_waiters(const std::string& channel, const std::string& error);
  void fail_all_waiters(const std::string& error);
  void close_socket();

  Pooler& pooler_;
  PoolEntry& entry_;
  std::string database_;
  boost::asio::generic::stream_protocol::socket socket_;
  boost::asio::steady_timer timer_;
  notify::ChannelRegistry registry_;
  std::unordered_map<Id, ClientConn*> clients_;
  std::map<std::string, std::vector<std::pair<Id, Done>>> waiters_;  // LISTENs not yet acknowledged
  std::deque<InFlight> in_flight_;
  std::string out_;
  bool writing_ = false;
  bool running_ = false;
  bool connected_ = false;
  bool stopped_ = false;
  int backend_pid_ = 0;
  std::uint64_t notifications_ = 0;
  std::uint64_t overflows_ = 0;
};

}  // namespace pgcohere::pooler

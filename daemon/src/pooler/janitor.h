// The janitor (PgBouncer's janitor.c): every 250 ms it applies the timeouts, keeps pools
// at min_pool_size, opens the reserve pool, answers PAUSE and rolls the stats period.
// Its decisions are pure functions of `now` and plain state (namespace janitor below:
// no sockets, no clock reads), so daemon/tests/janitor_test.cpp drives them with a fake
// clock; the Janitor class applies them to the live connections.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <optional>
#include <string_view>

#include "config/config.h"

namespace pgcohere::pooler::janitor {

using Clock = std::chrono::steady_clock;

// Seconds from `then` to `now` (negative when `then` is later).
double seconds_between(Clock::time_point then, Clock::time_point now);

// client_login_timeout: a client that has not logged in this long is closed (0: never).
bool login_expired(Clock::time_point now, Clock::time_point connected_at, bool logged_in,
                   const config::DaemonSettings& d);

// An idle server connection: closed (server_idle_timeout, server_lifetime), marked for a
// server_check_query before the next client gets it (server_check_delay), or kept.
enum class IdleServer { keep, close, check_due };
IdleServer idle_server(Clock::time_point now, Clock::time_point last_used, Clock::time_point connected_at,
                       const config::DaemonSettings& d);

// What the janitor knows about one logged-in client of a pool.
struct ClientState {
  Clock::time_point last_activity;       // the client's last bytes
  bool waiting = false;                  // queued for a server connection
  bool linked = false;                   // holds a server connection
  bool server_busy = false;              // ... with requests in flight
  char server_tx_status = 'I';           // ... its ReadyForQuery status
  Clock::time_point server_last_activity;  // ... its last bytes
};

// client_idle_timeout, query_timeout or idle_transaction_timeout: the reason (PgBouncer's
// text, which the client gets) when the client must be closed now, else nullopt.
std::optional<std::string_view> client_timeout(Clock::time_point now, const ClientState& c,
                                               const config::DaemonSettings& d);
inline constexpr std::string_view kQueryTimeout = "query_timeout";

// A client with nothing linked or queued and no bytes for this long parks (ClientConn::
// park_if_quiet): a second is long next to a transaction and short next to the idle
// time of the clients that make a pooler's memory (10,000 connected, few busy).
inline constexpr double kParkAfterSeconds = 1.0;
bool parks(Clock::time_point now, const ClientState& c);

// query_wait_timeout: a client queued since `wait_started` gets an error now.
bool wait_expired(Clock::time_point now, Clock::time_point wait_started, const config::DaemonSettings& d);

// reserve_pool_timeout: the oldest waiter (queued since `oldest_wait_started`) has waited
// long enough that the pool may open its reserve connections.
bool reserve_due(Clock::time_point now, Clock::time_point oldest_wait_started, int reserve_pool_size,
                 const config::DaemonSettings& d);

// stats_period (at least one second): the SHOW STATS averages are due for a new period.
bool stats_period_over(Clock::time_point now, Clock::time_point period_started, const config::DaemonSettings& d);

}  // namespace pgcohere::pooler::janitor

namespace pgcohere::pooler {

class Pooler;
class PoolEntry;

class Janitor {
 public:
  using Clock = janitor::Clock;
  Janitor(boost::asio::io_context& io, Pooler& pooler);
  void start();
  void stop();

 private:
  void schedule();
  void tick(Clock::time_point now);
  // One function per timeout, in the order tick() runs them.
  void close_late_logins(Clock::time_point now);       // client_login_timeout
  void expire_idle_servers(PoolEntry& e, Clock::time_point now);  // server_idle_timeout, server_lifetime,
                                                                  // server_check_delay
  void expire_clients(PoolEntry& e, Clock::time_point now);  // client_idle_timeout, query_timeout,
                                                              // idle_transaction_timeout
  void expire_waiters(PoolEntry& e, Clock::time_point now);  // query_wait_timeout; watches waiters' sockets
  void open_reserve(PoolEntry& e, Clock::time_point now);    // reserve_pool_timeout

  Pooler& pooler_;
  boost::asio::steady_timer timer_;
  bool stopped_ = false;
};

}  // namespace pgcohere::pooler

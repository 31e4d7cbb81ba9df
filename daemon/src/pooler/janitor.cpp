// The janitor (see janitor.h): the pure decisions, then the timer that applies them.
#include "pooler/janitor.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "pooler/client_conn.h"
#include "pooler/pooler.h"
#include "pooler/server_conn.h"

namespace pgcohere::pooler::janitor {

double seconds_between(Clock::time_point then, Clock::time_point now) {
  return std::chrono::duration<double>(now - then).count();
}

bool login_expired(Clock::time_point now, Clock::time_point connected_at, bool logged_in,
                   const config::DaemonSettings& d) {
  return d.client_login_timeout > 0 && !logged_in && seconds_between(connected_at, now) > d.client_login_timeout;
}

IdleServer idle_server(Clock::time_point now, Clock::time_point last_used, Clock::time_point connected_at,
                       const config::DaemonSettings& d) {
  double idle_s = seconds_between(last_used, now);
  double age_s = seconds_between(connected_at, now);
  if ((d.server_idle_timeout > 0 && idle_s > d.server_idle_timeout) ||
      (d.server_lifetime > 0 && age_s > d.server_lifetime))
    return IdleServer::close;
  if (!d.server_check_query.empty() && idle_s > d.server_check_delay) return IdleServer::check_due;
  return IdleServer::keep;
}

std::optional<std::string_view> client_timeout(Clock::time_point now, const ClientState& c,
                                               const config::DaemonSettings& d) {
  // Both sides must have been quiet: a long answer still streaming is not a timeout.
  auto quiet_for = [&](double limit) {
    return seconds_between(c.last_activity, now) > limit && seconds_between(c.server_last_activity, now) > limit;
  };
  if (!c.linked) {
    if (d.client_idle_timeout > 0 && !c.waiting && seconds_between(c.last_activity, now) > d.client_idle_timeout)
      return "client_idle_timeout";
    return std::nullopt;
  }
  if (c.server_busy) {
    if (d.query_timeout > 0 && quiet_for(d.query_timeout)) return kQueryTimeout;
  } else if (c.server_tx_status != 'I' && d.idle_transaction_timeout > 0 && quiet_for(d.idle_transaction_timeout)) {
    return "idle transaction timeout";
  }
  return std::nullopt;
}

bool parks(Clock::time_point now, const ClientState& c) {
  return !c.linked && !c.waiting && seconds_between(c.last_activity, now) >= kParkAfterSeconds;
}

bool wait_expired(Clock::time_point now, Clock::time_point wait_started, const config::DaemonSettings& d) {
  return d.query_wait_timeout > 0 && seconds_between(wait_started, now) >= d.query_wait_timeout;
}

bool reserve_due(Clock::time_point now, Clock::time_point oldest_wait_started, int reserve_pool_size,
                 const config::DaemonSettings& d) {
  return reserve_pool_size > 0 && seconds_between(oldest_wait_started, now) > d.reserve_pool_timeout;
}

bool stats_period_over(Clock::time_point now, Clock::time_point period_started, const config::DaemonSettings& d) {
  return seconds_between(period_started, now) >= std::max(1.0, d.stats_period);
}

}  // namespace pgcohere::pooler::janitor

namespace pgcohere::pooler {

Janitor::Janitor(boost::asio::io_context& io, Pooler& pooler) : pooler_(pooler), timer_(io) {}

void Janitor::start() {
  stopped_ = false;
  schedule();
}

void Janitor::stop() {
  stopped_ = true;
  timer_.cancel();
}

void Janitor::schedule() {
  timer_.expires_after(std::chrono::milliseconds(250));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_ || pooler_.stopping()) return;
    tick(Clock::now());
    schedule();
  });
}

void Janitor::tick(Clock::time_point now) {
  close_late_logins(now);
  for (auto& [key, e] : pooler_.pools()) {
    expire_idle_servers(*e, now);
    e->retry_login(now, pooler_.settings().server_login_retry);
    e->ensure_min();
    expire_clients(*e, now);
    expire_waiters(*e, now);
    open_reserve(*e, now);
  }
  pooler_.check_pauses();
  pooler_.stats_averages().roll(now, pooler_.pools(), pooler_.settings());
}

// Checked here rather than with a timer per connection: no timer-queue work and no
// timerfd call for every login. Logins are listed oldest first, so the visit stops at the
// first one still in time: logged-in clients, however many, cost nothing here.
void Janitor::close_late_logins(Clock::time_point now) {
  std::vector<ClientConn*> late;
  for (ClientConn* c : pooler_.logins()) {
    if (!janitor::login_expired(now, c->connected_at(), c->logged_in(), pooler_.settings())) break;
    late.push_back(c);
  }
  for (ClientConn* c : late) c->close();
}

void Janitor::expire_idle_servers(PoolEntry& e, Clock::time_point now) {
  std::vector<std::shared_ptr<ServerConn>> expired;
  for (auto& s : e.queue().idle()) {
    switch (janitor::idle_server(now, s->last_used(), s->connected_at(), pooler_.settings())) {
      case janitor::IdleServer::close: expired.push_back(s); break;
      case janitor::IdleServer::check_due: s->set_check_due(); break;  // checked before the next client gets it
      case janitor::IdleServer::keep: break;
    }
  }
  for (auto& s : expired) s->close();
}

void Janitor::expire_clients(PoolEntry& e, Clock::time_point now) {
  std::vector<std::pair<ClientConn*, std::string_view>> expired;
  // A parked client is quiet, unlinked and not queued: of every timeout only
  // client_idle_timeout can apply to it, and parking is done. Without that timeout the
  // visit skips them all.
  auto visit = [&](ClientConn* c) {
    janitor::ClientState st;
    st.last_activity = c->last_activity();
    st.waiting = c->waiting();
    if (auto& s = c->server()) {
      st.linked = true;
      st.server_busy = s->session().requests_in_flight();
      st.server_tx_status = s->session().tx_status();
      st.server_last_activity = s->last_activity();
    }
    if (auto why = janitor::client_timeout(now, st, pooler_.settings())) {
      expired.emplace_back(c, *why);
    } else if (janitor::parks(now, st)) {
      c->park_if_quiet();
    }
  };
  if (pooler_.settings().client_idle_timeout > 0) {
    for (ClientConn* c : e.clients()) visit(c);
  } else {
    for (ClientConn* c : e.awake_clients()) visit(c);
  }
  for (auto& [c, why] : expired) {
    // The server connection is mid-transaction or mid-query: it is closed, not reused.
    if (auto s = c->server()) {
      if (why == janitor::kQueryTimeout) s->send_cancel();  // stop the query too
      s->unlink();
      s->close();
    }
    c->expire(std::string(why));
  }
}

// Clients that waited past query_wait_timeout get PgBouncer's error.
void Janitor::expire_waiters(PoolEntry& e, Clock::time_point now) {
  std::vector<ClientConn*> late;
  for (ClientConn* c : e.queue().waiters()) {
    if (janitor::wait_expired(now, c->wait_started(), pooler_.settings())) late.push_back(c);
    else c->watch_while_waiting();  // a client that leaves the queue is noticed from now on
  }
  for (ClientConn* c : late) {
    e.stop_waiting(c);
    c->wait_timed_out();
  }
}

// Waiters past reserve_pool_timeout may use the reserve pool.
void Janitor::open_reserve(PoolEntry& e, Clock::time_point now) {
  if (e.queue().waiters().empty()) return;
  if (janitor::reserve_due(now, e.queue().waiters().front()->wait_started(), e.queue().limits().reserve_pool_size,
                           pooler_.settings()))
    e.use_reserve();
}

}  // namespace pgcohere::pooler

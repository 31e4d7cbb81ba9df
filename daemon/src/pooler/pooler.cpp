// The pooler service (see pooler.h): accept loop, pools, cancel routing, reload, janitor.
#include "pooler/pooler.h"

#include <sys/resource.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/socket_base.hpp>
#include <stdexcept>

#include "pooler/client_conn.h"
#include "pooler/server_conn.h"
#include "util/log.h"

namespace pgcohere::pooler {

namespace asio = boost::asio;
using asio::ip::tcp;

PoolMode parse_pool_mode(const std::string& s) {
  if (s == "session") return PoolMode::session;
  if (s == "statement") return PoolMode::statement;
  return PoolMode::transaction;
}

const char* to_string(PoolMode m) {
  switch (m) {
    case PoolMode::session: return "session";
    case PoolMode::transaction: return "transaction";
    case PoolMode::statement: return "statement";
  }
  return "transaction";
}

Pooler::Pooler(asio::io_context& io, const config::Config& config)
    : io_(io),
      config_(config),
      tracked_(config.daemon.track_extra_parameters),
      // PgBouncer's pkt_buf; a burst of activity keeps a few spare blocks.
      client_buffers_(static_cast<size_t>(std::max(1024, config.daemon.pkt_buf)), 256),
      janitor_timer_(io) {
  load_users();
}

void Pooler::load_users() {
  if (config_.daemon.auth_file.empty()) {
    users_.reset();
    return;
  }
  try {
    users_ = std::make_shared<auth::UserList>(auth::load_userlist(config_.daemon.auth_file));
  } catch (const std::exception& e) {
    // A bad auth_file keeps the users already loaded (at start: nobody can log in with a password).
    PGC_LOG_ERROR << "auth_file: " << e.what();
  }
}

Pooler::~Pooler() {
  if (collector_id_) metrics::registry().remove_collector(collector_id_);
}

namespace {
// Every client and server connection is a file descriptor: raise the soft limit as far as
// max_client_conn needs (PgBouncer warns the same way when it cannot).
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
}  // namespace

void Pooler::start() {
  auto& d = config_.daemon;
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
  janitor();
  collector_id_ = metrics::registry().add_collector([this](metrics::Exposition& out) { collect(out); });
}

// Pool gauges and counters at scrape time (the /metrics server runs on this io_context).
void Pooler::collect(metrics::Exposition& out) {
  auto now = std::chrono::steady_clock::now();
  for (auto& [key, e] : pools_) {
    metrics::Labels l{{"database", key.first}, {"user", key.second}};
    int cl_active = 0, cl_waiting = 0;
    for (ClientConn* c : e->clients) (c->waiting() ? cl_waiting : cl_active)++;
    double maxwait = 0;
    if (!e->pool.waiters().empty())
      maxwait = std::chrono::duration<double>(now - e->pool.waiters().front()->wait_started()).count();
    out.gauge("pgcohere_pool_cl_active", "Clients not waiting for a server connection", l, cl_active);
    out.gauge("pgcohere_pool_cl_waiting", "Clients waiting for a server connection", l, cl_waiting);
    out.gauge("pgcohere_pool_sv_active", "Server connections linked to a client", l, e->pool.active());
    out.gauge("pgcohere_pool_sv_idle", "Idle server connections", l, e->pool.idle_count());
    out.gauge("pgcohere_pool_sv_used", "Server connections being reset", l, 0);
    out.gauge("pgcohere_pool_sv_login", "Server connections logging in", l, e->pool.connecting());
    out.gauge("pgcohere_pool_maxwait_seconds", "How long the oldest waiting client has waited", l, maxwait);
    auto& s = e->stats;
    out.counter("pgcohere_pool_transactions_total", "Transactions pooled (server connection released)", l,
                static_cast<double>(s.xact_count));
    out.counter("pgcohere_pool_queries_total", "Requests answered by ReadyForQuery", l,
                static_cast<double>(s.query_count));
    out.counter("pgcohere_pool_received_bytes_total", "Bytes received from clients", l,
                static_cast<double>(s.bytes_received));
    out.counter("pgcohere_pool_sent_bytes_total", "Bytes sent to clients", l, static_cast<double>(s.bytes_sent));
    out.counter("pgcohere_pool_server_connect_errors_total", "Failed server logins", l,
                static_cast<double>(s.server_connect_errors));
    out.counter("pgcohere_pool_server_checks_total", "server_check_query runs on idle server connections", l,
                static_cast<double>(s.server_checks));
    out.counter("pgcohere_pool_server_check_failures_total",
                "server_check_query runs that failed (the connection was closed)", l,
                static_cast<double>(s.server_check_failures));
    out.counter("pgcohere_pool_wait_seconds_total", "Time clients spent waiting for a server connection", l,
                static_cast<double>(s.wait_time_us) / 1e6);
  }
  out.gauge("pgcohere_clients", "Client connections (including logins in progress)", {},
            static_cast<double>(all_clients_.size()));
}

void Pooler::accept_next() {
  acceptor_->async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping_) return;
      PGC_LOG_WARN << "accept failed: " << ec.message();
    } else {
      auto c = std::make_shared<ClientConn>(*this, std::move(socket));
      c->start();
    }
    if (!stopping_) accept_next();
  });
}

void Pooler::stop() {
  stopping_ = true;
  if (collector_id_) metrics::registry().remove_collector(collector_id_);
  collector_id_ = 0;
  if (acceptor_) {
    boost::system::error_code ec;
    acceptor_->close(ec);
  }
  janitor_timer_.cancel();
  std::vector<ClientConn*> clients(all_clients_.begin(), all_clients_.end());
  for (auto* c : clients) c->close();
  for (auto& [key, e] : pools_) {
    std::vector<ServerConn*> servers(e->servers.begin(), e->servers.end());
    for (auto* s : servers) s->close();
  }
}

PoolEntry* Pooler::find_pool(const std::string& database, const std::string& user, std::string& error) {
  const config::ConnEntry* db = config_.find_database(database);
  if (!db) {
    error = "no such database: " + database;
    return nullptr;
  }
  pool::Target target;
  try {
    target = pool::resolve_target(*db, database);
  } catch (const std::exception& e) {
    error = "bad [databases] entry for " + database + ": " + e.what();
    return nullptr;
  }
  std::string server_user = target.user.empty() ? user : target.user;
  auto key = std::make_pair(database, server_user);
  auto it = pools_.find(key);
  if (it != pools_.end()) return it->second.get();
  auto entry = std::make_unique<PoolEntry>(database, server_user, pool::PoolLimits{});
  entry->target = std::move(target);
  entry->server_user = server_user;
  entry->queue_wait_ms = &metrics::registry().histogram(
      "pgcohere_pool_queue_wait_ms", "Time a transaction waited for a server connection, in milliseconds",
      metrics::latency_buckets_ms(), {{"database", database}, {"user", server_user}});
  apply_limits(*entry);
  PoolEntry* raw = entry.get();
  raw->pool.set_launcher([this, raw] { launch_server(*raw); });
  raw->pool.set_admission([this, raw] {
    int max_db = raw->target.max_db_connections >= 0 ? raw->target.max_db_connections
                                                     : config_.daemon.max_db_connections;
    int max_user = config_.daemon.max_user_connections;
    if (max_db <= 0 && max_user <= 0) return true;
    int db_total = 0, user_total = 0;
    for (auto& [k, e] : pools_) {
      if (k.first == raw->pool.database()) db_total += e->pool.total();
      if (k.second == raw->pool.user()) user_total += e->pool.total();
    }
    return (max_db <= 0 || db_total < max_db) && (max_user <= 0 || user_total < max_user);
  });
  // server_check_query: the janitor marks connections idle past server_check_delay.
  raw->pool.set_checker(
      [this](const ServerConn& s) { return s.check_due() && !config_.daemon.server_check_query.empty(); },
      [](std::shared_ptr<ServerConn> s) { s->start_check(); });
  pools_.emplace(key, std::move(entry));
  return raw;
}

void Pooler::apply_limits(PoolEntry& e) {
  auto& d = config_.daemon;
  pool::PoolLimits l;
  l.pool_size = e.target.pool_size >= 0 ? e.target.pool_size : d.default_pool_size;
  l.min_pool_size = e.target.min_pool_size >= 0 ? e.target.min_pool_size : d.min_pool_size;
  l.reserve_pool_size = e.target.reserve_pool >= 0 ? e.target.reserve_pool : d.reserve_pool_size;
  e.mode = parse_pool_mode(e.target.pool_mode.empty() ? d.pool_mode : e.target.pool_mode);
  e.pool.set_limits(l);
}

void Pooler::launch_server(PoolEntry& entry) {
  auto s = std::make_shared<ServerConn>(*this, entry);
  s->start();
}

// Counts every connection, logged in or still logging in (the caller is one of them).
bool Pooler::admit_client() {
  return static_cast<int>(all_clients_.size()) <= config_.daemon.max_client_conn;
}

void Pooler::add_client(ClientConn* c) { clients_[c->cancel_id()] = c; }

void Pooler::remove_client(ClientConn* c) {
  auto it = clients_.find(c->cancel_id());
  if (it != clients_.end() && it->second == c) clients_.erase(it);
}

void Pooler::cancel(int32_t pid, int32_t key) {
  uint64_t id = (uint64_t(uint32_t(pid)) << 32) | uint32_t(key);
  auto it = clients_.find(id);
  if (it == clients_.end()) {
    PGC_LOG_DEBUG << "cancel request for an unknown client";
    return;
  }
  if (auto& s = it->second->server()) s->send_cancel();
}

void Pooler::reload(const config::Config& config) {
  config_ = config;
  tracked_ = session::TrackedNames(config_.daemon.track_extra_parameters);
  load_users();
  for (auto& [key, e] : pools_) {
    const config::ConnEntry* db = config_.find_database(key.first);
    if (db) {
      try {
        auto t = pool::resolve_target(*db, key.first);
        e->target = std::move(t);
      } catch (const std::exception& ex) {
        PGC_LOG_WARN << "reload: [databases] " << key.first << ": " << ex.what();
      }
    }
    apply_limits(*e);
    for (auto& s : e->pool.take_surplus_idle()) s->close();
    for (auto* s : e->servers) s->session().statements().set_capacity(config_.daemon.max_prepared_statements);
  }
}

void Pooler::janitor() {
  janitor_timer_.expires_after(std::chrono::milliseconds(250));
  janitor_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_) return;
    auto now = std::chrono::steady_clock::now();
    auto& d = config_.daemon;
    if (d.client_login_timeout > 0) {
      // Checked here rather than with a timer per connection: no timer-queue work and no
      // timerfd call for every login.
      std::vector<ClientConn*> late;
      for (ClientConn* c : all_clients_)
        if (!c->logged_in() && std::chrono::duration<double>(now - c->connected_at()).count() > d.client_login_timeout)
          late.push_back(c);
      for (ClientConn* c : late) c->close();
    }
    for (auto& [key, e] : pools_) {
      // Idle connections past server_idle_timeout or server_lifetime are closed.
      std::vector<std::shared_ptr<ServerConn>> expired;
      bool checks = !d.server_check_query.empty();
      for (auto& s : e->pool.idle()) {
        double idle_s = std::chrono::duration<double>(now - s->last_used()).count();
        double age_s = std::chrono::duration<double>(now - s->connected_at()).count();
        if ((d.server_idle_timeout > 0 && idle_s > d.server_idle_timeout) ||
            (d.server_lifetime > 0 && age_s > d.server_lifetime))
          expired.push_back(s);
        else if (checks && idle_s > d.server_check_delay)
          s->set_check_due();  // checked before the next client gets it
      }
      for (auto& s : expired) s->close();
      e->pool.ensure_min();
      (void)key;
      // Client-side timeouts, with PgBouncer's names and error texts.
      std::vector<std::pair<ClientConn*, const char*>> expired_clients;
      for (ClientConn* c : e->clients) {
        auto since = [&](std::chrono::steady_clock::time_point t) {
          return std::chrono::duration<double>(now - t).count();
        };
        auto& s = c->server();
        if (!s) {
          if (d.client_idle_timeout > 0 && !c->waiting() && since(c->last_activity()) > d.client_idle_timeout)
            expired_clients.emplace_back(c, "client_idle_timeout");
          continue;
        }
        if (s->session().requests_in_flight()) {
          if (d.query_timeout > 0 && since(c->last_activity()) > d.query_timeout &&
              since(s->last_activity()) > d.query_timeout)
            expired_clients.emplace_back(c, "query_timeout");
        } else if (s->session().tx_status() != 'I' && d.idle_transaction_timeout > 0 &&
                   since(c->last_activity()) > d.idle_transaction_timeout &&
                   since(s->last_activity()) > d.idle_transaction_timeout) {
          expired_clients.emplace_back(c, "idle transaction timeout");
        }
      }
      for (auto& [c, why] : expired_clients) {
        // The server connection is mid-transaction or mid-query: it is closed, not reused.
        if (auto s = c->server()) {
          if (std::string_view(why) == "query_timeout") s->send_cancel();  // stop the query too
          s->unlink();
          s->close();
        }
        c->expire(why);
      }
      // Clients that waited past query_wait_timeout get PgBouncer's error.
      if (d.query_wait_timeout > 0) {
        std::vector<ClientConn*> late;
        for (ClientConn* c : e->pool.waiters())
          if (std::chrono::duration<double>(now - c->wait_started()).count() >= d.query_wait_timeout)
            late.push_back(c);
        for (ClientConn* c : late) {
          e->pool.cancel(c);
          c->wait_timed_out();
        }
      }
      // Waiters past reserve_pool_timeout may use the reserve pool.
      if (!e->pool.waiters().empty() && e->pool.limits().reserve_pool_size > 0) {
        ClientConn* first = e->pool.waiters().front();
        if (std::chrono::duration<double>(now - first->wait_started()).count() > d.reserve_pool_timeout)
          e->pool.use_reserve();
      }
    }
    check_pauses();
    // Averages for SHOW STATS over the last stats_period.
    double period = std::chrono::duration<double>(now - stats_prev_at_).count();
    if (period >= std::max(1.0, d.stats_period)) {
      std::map<std::string, admin::StatsCounters> current;
      for (auto& [k, e] : pools_) current[k.first] = totals(k.first);
      for (auto& [db, c] : current)
        stats_avg_[db] = admin::compute_averages(c, stats_prev_[db], static_cast<std::uint64_t>(period * 1e6));
      stats_prev_ = std::move(current);
      stats_prev_at_ = now;
    }
    janitor();
  });
}

}  // namespace pgcohere::pooler

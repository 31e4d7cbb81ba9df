// The pooler service (see pooler.h): pools, cancel routing, reload, janitor.
#include "pooler/pooler.h"

#include <boost/asio/post.hpp>
#include <sstream>
#include <stdexcept>

#include "pooler/cancel_key.h"
#include "pooler/client_conn.h"
#include "pooler/server_conn.h"
#include "util/log.h"

namespace pgcohere::pooler {

namespace asio = boost::asio;
using asio::ip::tcp;

Pooler::Pooler(asio::io_context& io, const config::Config& config, app::Control& control)
    : io_(io),
      control_(control),
      config_(config),
      tracked_(config.daemon.track_extra_parameters),
      // PgBouncer's pkt_buf; a burst of activity keeps a few spare blocks.
      client_buffers_(static_cast<size_t>(std::max(1024, config.daemon.pkt_buf)), 256),
      listener_(io,
                [this](Listener::Socket socket, bool unix_socket) {
                  std::make_shared<ClientConn>(*this, std::move(socket), unix_socket)->start();
                }),
      janitor_(io, *this),
      peers_(io),
      peer_id_(config.daemon.peer_id),
      drain_timer_(io),
      resumed_(io, boost::asio::steady_timer::time_point::max()) {
  load_users();
  load_hba();
  peers_.configure(config_);
}

void Pooler::load_hba() {
  if (config_.daemon.auth_type != "hba") {
    hba_.reset();
    return;
  }
  try {
    hba_ = std::make_shared<auth::HbaRules>(auth::load_hba(config_.daemon.auth_hba_file));
    PGC_LOG_INFO << "auth_hba_file " << config_.daemon.auth_hba_file << ": " << hba_->rules.size() << " rule(s)";
  } catch (const auth::HbaError& e) {
    // The configuration check read it a moment ago; a file broken since keeps the rules
    // in force (at start: no rule, so every login is rejected).
    PGC_LOG_ERROR << "auth_hba_file not loaded: " << e.what();
    if (!hba_) hba_ = std::make_shared<auth::HbaRules>();
  }
}

std::optional<AuthQuery> Pooler::auth_query_for(const PoolEntry& entry) const {
  const pool::Target& t = entry.target();
  const auto& d = config_.daemon;
  AuthQuery q;
  q.auth_user = !t.auth_user.empty() ? t.auth_user : d.auth_user;
  if (q.auth_user.empty()) return std::nullopt;
  q.query = !t.auth_query.empty() ? t.auth_query : d.auth_query;
  std::string dbname = !t.auth_dbname.empty() ? t.auth_dbname : d.auth_dbname;
  if (dbname.empty()) {
    q.target = t;
  } else {
    const config::ConnEntry* db = config_.find_database(dbname);
    if (!db) throw std::invalid_argument("auth_dbname " + dbname + " is not a [databases] entry");
    q.target = pool::resolve_target(*db, dbname, config_.daemon.unix_socket_dir);
  }
  return q;
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
// Every server_tls_* setting, to see whether a reload changed one.
std::string server_tls_settings(const config::DaemonSettings& d) {
  std::string all;
  for (const std::string* v : {&d.server_tls_sslmode, &d.server_tls_ca_file, &d.server_tls_key_file,
                               &d.server_tls_cert_file, &d.server_tls_protocols, &d.server_tls_ciphers,
                               &d.server_tls13_ciphers})
    all.append(*v).push_back('\n');
  return all;
}
}  // namespace

bool Pooler::load_tls(bool at_start) {
  const auto& d = config_.daemon;
  net::TlsSide client, server;
  try {
    client = net::make_client_side_tls(d);
    server = net::make_server_side_tls(d);
  } catch (const std::exception& e) {
    if (at_start) throw;
    PGC_LOG_ERROR << "reload: TLS settings not applied, the previous ones stay in force: " << e.what();
    return false;
  }
  // Files are read again at every reload, changed or not: new connections use what they
  // hold now, established ones keep the context they started with.
  std::string settings = server_tls_settings(d);
  bool server_changed = !at_start && settings != server_tls_settings_;
  client_tls_ = std::move(client);
  server_tls_ = std::move(server);
  server_tls_settings_ = std::move(settings);
  return server_changed;
}

void Pooler::start() {
  load_tls(true);
  listener_.start(config_.daemon);
  janitor_.start();
  collector_id_ = metrics::registry().add_collector([this](metrics::Exposition& out) { collect(out); });
}

// /metrics reads the same samples as SHOW POOLS (the /metrics server runs on this
// io_context, so the collector runs on the pooler's thread).
void Pooler::collect(metrics::Exposition& out) {
  expose(out, sample_pools(pools_, std::chrono::steady_clock::now()), listener_.all_clients().size());
  out.counter("pgcohere_peer_cancels_forwarded_total",
              "CancelRequests sent on to the peer process whose key they carry ([peers])", {},
              static_cast<double>(peers_.forwarded()));
  out.counter("pgcohere_peer_cancels_dropped_total",
              "CancelRequests for another peer dropped (not in [peers], over its pool_size, or not ours either)", {},
              static_cast<double>(peers_.dropped()));
  out.gauge("pgcohere_clients_parked",
            "Clients waiting for their next request with no coroutine (quiet for a second, or just logged in)", {},
            static_cast<double>(parked_clients_));
  out.gauge("pgcohere_draining", "1 while SHUTDOWN WAIT_FOR_CLIENTS (SIGINT) waits for the clients to leave", {},
            draining_ ? 1 : 0);
  // LISTEN/NOTIFY (notify_hub.h), per database that has a pool: zeros until a client listens.
  std::set<std::string> databases;
  for (auto& [key, e] : pools_) databases.insert(key.first);
  for (const auto& db : databases) {
    auto it = notify_hubs_.find(db);
    const NotifyHub* hub = it == notify_hubs_.end() ? nullptr : it->second.get();
    metrics::Labels l{{"database", db}};
    out.gauge("pgcohere_listen_channels", "Channels the LISTEN connection listens on for clients", l,
              hub ? static_cast<double>(hub->channel_count()) : 0);
    out.gauge("pgcohere_listen_clients", "Clients listening on at least one channel (transaction pooling)", l,
              hub ? static_cast<double>(hub->client_count()) : 0);
    out.gauge("pgcohere_listen_connected", "1 while the LISTEN connection for clients is logged in", l,
              hub && hub->connected() ? 1 : 0);
    out.counter("pgcohere_listen_notifications_total", "Notifications the LISTEN connection received", l,
                hub ? static_cast<double>(hub->notifications()) : 0);
    out.counter("pgcohere_listen_overflows_total",
                "Clients disconnected because their pending notifications passed the bound", l,
                hub ? static_cast<double>(hub->overflows()) : 0);
  }
}

void Pooler::stop() {
  stopping_ = true;
  drain_timer_.cancel();
  if (collector_id_) metrics::registry().remove_collector(collector_id_);
  collector_id_ = 0;
  listener_.stop();
  janitor_.stop();
  for (auto& [db, hub] : notify_hubs_) hub->stop();
  suspended_ = false;
  resumed_.cancel();  // clients held by SUSPEND go on (to be closed below)
  std::vector<ClientConn*> clients(listener_.all_clients().begin(), listener_.all_clients().end());
  for (auto* c : clients) c->close();
  for (auto& [key, e] : pools_) {
    std::vector<ServerConn*> servers(e->servers().begin(), e->servers().end());
    for (auto* s : servers) s->close();
  }
}

void Pooler::drain() {
  if (stopping_ || draining_) return;
  draining_ = true;
  drain_started_ = std::chrono::steady_clock::now();
  // A peered process keeps its Unix socket: peers send cancels for its clients there.
  bool keep_unix = peer_id_ > 0 && !config_.peers.empty();
  listener_.stop_accepting(keep_unix);
  double limit = config_.daemon.shutdown_wait_timeout;
  std::ostringstream bound;
  if (limit > 0) bound << ", at most " << limit << " s (shutdown_wait_timeout)";
  if (!wait_for_servers_) {
    PGC_LOG_INFO << "shutdown: waiting for clients to leave (" << listener_.all_clients().size()
               << " connected); new connections go to the other processes on the port"
               << (keep_unix ? " (the Unix socket stays open for peers)" : "") << bound.str();
  }
  check_drained();
}

void Pooler::drain_servers() {
  if (stopping_ || wait_for_servers_) return;
  wait_for_servers_ = true;
  bool started = draining_;
  if (!draining_) drain();  // stops accepting, logs, and starts the polling below
  // Those queued for a server connection would get one only to start a new transaction.
  std::vector<ClientConn*> queued;
  for (ClientConn* c : listener_.all_clients())
    if (c->waiting()) queued.push_back(c);
  for (ClientConn* c : queued) c->fail("server shutting down");
  PGC_LOG_INFO << "shutdown: waiting for the server connections in use to be released ("
               << servers_in_use() << " now); no client gets one any more" << (started ? " (was waiting for clients)" : "");
}

std::size_t Pooler::servers_in_use() const {
  std::size_t n = 0;
  for (ClientConn* c : listener_.all_clients())
    if (c->server()) ++n;
  return n;
}

// Polled: a client leaving has no hook here, and 100 ms is nothing next to a drain.
void Pooler::check_drained() {
  if (stopping_) return;
  std::size_t left = 0;
  if (wait_for_servers_) {
    left = servers_in_use();
  } else {
    for (ClientConn* c : listener_.all_clients())
      if (!c->admin()) ++left;  // a console session (monitoring the drain) does not hold it up
  }
  const char* what = wait_for_servers_ ? "server connection(s) in use" : "client(s)";
  double limit = config_.daemon.shutdown_wait_timeout;
  bool expired = limit > 0 && std::chrono::steady_clock::now() - drain_started_ >= std::chrono::duration<double>(limit);
  if (left == 0 || expired) {
    if (left == 0) {
      PGC_LOG_INFO << (wait_for_servers_ ? "shutdown: every server connection is released"
                                         : "shutdown: every client has left");
    } else {
      PGC_LOG_WARN << "shutdown: shutdown_wait_timeout passed, closing " << left << " " << what;
    }
    boost::asio::post(io_, [this] { control_.shutdown(); });
    return;
  }
  drain_timer_.expires_after(std::chrono::milliseconds(100));
  drain_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) check_drained();
  });
}

PoolEntry* Pooler::find_pool(const std::string& database, const std::string& user, std::string& error) {
  const config::ConnEntry* db = config_.find_database(database);
  if (!db) {
    error = "no such database: " + database;
    return nullptr;
  }
  pool::Target target;
  try {
    target = pool::resolve_target(*db, database, config_.daemon.unix_socket_dir);
  } catch (const std::exception& e) {
    error = "bad [databases] entry for " + database + ": " + e.what();
    return nullptr;
  }
  std::string server_user = target.user.empty() ? user : target.user;
  auto key = std::make_pair(database, server_user);
  auto it = pools_.find(key);
  if (it != pools_.end()) return it->second.get();
  auto& queue_wait_ms = metrics::registry().histogram(
      "pgcohere_pool_queue_wait_ms", "Time a transaction waited for a server connection, in milliseconds",
      metrics::latency_buckets_ms(), {{"database", database}, {"user", server_user}});
  auto& xact_duration_ms = metrics::registry().histogram(
      "pgcohere_pool_transaction_duration_ms",
      "Time a transaction held its server connection, from link to release, in milliseconds",
      metrics::round_buckets(0.1, 10000), {{"database", database}, {"user", server_user}});
  auto entry = std::make_unique<PoolEntry>(database, server_user, std::move(target), queue_wait_ms, xact_duration_ms);
  entry->configure(config_.daemon);
  PoolEntry* raw = entry.get();
  raw->set_hooks([this, raw] { launch_server(*raw); },
                 [this, raw] {
                   // server_login_retry: after a failed login, no new one before it has passed.
                   if (!raw->may_try_login(std::chrono::steady_clock::now(), config_.daemon.server_login_retry))
                     return false;
                   int max_db = admission::max_db_connections(raw->target(), config_.daemon);
                   int max_user = config_.daemon.max_user_connections;
                   if (max_db <= 0 && max_user <= 0) return true;  // no need to count
                   int db_total = 0, user_total = 0;
                   for (auto& [k, e] : pools_) {
                     if (k.first == raw->queue().database()) db_total += e->queue().total();
                     if (k.second == raw->queue().user()) user_total += e->queue().total();
                   }
                   return admission::may_open_server(db_total, user_total, max_db, max_user);
                 },
                 // server_check_query: the janitor marks connections idle past server_check_delay.
                 [this](const ServerConn& s) { return s.check_due() && !config_.daemon.server_check_query.empty(); },
                 [](std::shared_ptr<ServerConn> s) { s->start_check(); });
  pools_.emplace(key, std::move(entry));
  return raw;
}

NotifyHub& Pooler::notify_hub(PoolEntry& entry) {
  auto& hub = notify_hubs_[entry.queue().database()];
  if (!hub) hub = std::make_unique<NotifyHub>(*this, entry);
  return *hub;
}

void Pooler::launch_server(PoolEntry& entry) {
  auto s = std::make_shared<ServerConn>(*this, entry);
  s->start();
}

void Pooler::add_client(ClientConn* c) { listener_.add_cancel_key(c->cancel_id(), c); }

void Pooler::remove_client(ClientConn* c) { listener_.remove_cancel_key(c->cancel_id(), c); }

void Pooler::cancel(int32_t pid, int32_t key) {
  int own = peer_id_;
  int peer = cancel_keys::peer_of(pid);
  switch (cancel_keys::route(own, pid, peers_.knows(peer))) {
    case cancel_keys::Route::local:
      break;
    case cancel_keys::Route::forward: {
      double limit_s = config_.daemon.server_connect_timeout > 0 ? config_.daemon.server_connect_timeout : 15;
      peers_.forward(peer, pid, key,
                     std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                         std::chrono::duration<double>(limit_s)));
      return;
    }
    case cancel_keys::Route::unknown_peer:
      peers_.count_dropped();
      PGC_LOG_DEBUG << "cancel request for peer " << peer << ", which is not in [peers]: dropped";
      return;
    case cancel_keys::Route::not_ours_again:
      peers_.count_dropped();
      PGC_LOG_DEBUG << "cancel request forwarded by a peer for peer " << peer << ", not this one (" << own
                    << "): dropped";
      return;
  }
  if (own > 0) pid = cancel_keys::original_pid(pid);
  ClientConn* c = listener_.find_by_cancel_key(cancel_key(pid, key));
  if (!c) {
    PGC_LOG_DEBUG << "cancel request for an unknown client";
    return;
  }
  if (auto& s = c->server()) s->send_cancel();
  else if (c->waiting()) c->cancel_wait();  // its request never reached PostgreSQL: answered here
}

void Pooler::reload(const config::Config& config) {
  config_ = config;
  tracked_ = session::TrackedNames(config_.daemon.track_extra_parameters);
  load_users();
  // PgBouncer reconnects after a change of TLS settings: no server connection made under
  // the old ones is used again (idle ones close now, busy ones when released).
  bool reconnect = load_tls(false);
  if (reconnect) {
    PGC_LOG_INFO << "reload: server_tls_* changed, server connections are replaced";
  }
  load_hba();
  peers_.configure(config_);
  if (config_.daemon.peer_id != peer_id_) {
    PGC_LOG_WARN << "reload: peer_id stays " << peer_id_ << " until a restart (the keys handed out carry it)";
  }
  auth_lookup_.clear_cache();
  for (auto& [key, e] : pools_) {
    const config::ConnEntry* db = config_.find_database(key.first);
    if (db) {
      try {
        auto t = pool::resolve_target(*db, key.first, config_.daemon.unix_socket_dir);
        e->retarget(std::move(t));
      } catch (const std::exception& ex) {
        PGC_LOG_WARN << "reload: [databases] " << key.first << ": " << ex.what();
      }
    }
    e->configure(config_.daemon);
    for (auto& s : e->take_surplus_idle()) s->close();
    if (reconnect) {
      std::vector<ServerConn*> servers(e->servers().begin(), e->servers().end());
      for (auto* s : servers) s->retire_when_released();
    }
    for (auto* s : e->servers()) s->session().statements().set_capacity(config_.daemon.max_prepared_statements);
  }
}

}  // namespace pgcohere::pooler

// The admin console's backend (PgBouncer's admin.c), in one file: the console session
// on a client connection (ClientConn::serve_admin), the pooler as the console's target
// (snapshots for SHOW; PAUSE, RESUME, RELOAD, SHUTDOWN, KILL) and the cache's part (SHOW
// CACHE, SHOW CACHE RULES, CACHE DELETE, SET cache_bypass). Parsing the commands and
// shaping the result sets is admin/ (pure, no pooler).
#include <cctype>
#include <cstdio>

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "admin/console.h"
#include "cache/redis_layout.h"
#include "config/config.h"
#include "pooler/client_conn.h"
#include "pooler/pooler.h"
#include "pooler/server_conn.h"
#include "protocol/messages.h"
#include "util/log.h"

namespace pgcohere::pooler {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

// ---- the console session on a client connection ----

awaitable<void> ClientConn::serve_admin(bool admin_user) {
  admin::Console console(pooler_);
  for (;;) {
    auto f = decoder_.next(in_.unconsumed());
    if (f.kind == protocol::Frame::Kind::need_more) {
      size_t n = co_await read_more();
      in_.produced(n);
      continue;
    }
    if (f.kind != protocol::Frame::Kind::message) {
      co_await send_fatal("08P01", "invalid message");
      co_return;
    }
    char type = f.type;
    std::string query;
    if (type == 'Q') {
      auto q = protocol::parse_query(f.body);
      if (q) query.assign(q.value());
    }
    in_.consume(f.consumed);
    if (type == 'X') co_return;
    std::string out;
    if (type != 'Q') {
      // PgBouncer's console speaks only the simple query protocol.
      protocol::encode::error_response(out, "ERROR", "08P01", "the admin console supports only simple queries");
      if (type == 'S' || type == 'H') protocol::encode::ready_for_query(out, 'I');
      co_await write_gated(out);
      continue;
    }
    // PAUSE may answer later: wait for the reply through shared state, so a connection
    // closed meanwhile leaves nothing dangling. The callback names the connection weakly:
    // a target that keeps it (a PAUSE never resumed, a Redis command never answered) must
    // not keep a console client that has gone alive with it.
    auto reply = std::make_shared<std::optional<admin::Reply>>();
    console.execute(query, admin_user, [reply, weak = weak_from_this()](admin::Reply r) {
      *reply = std::move(r);
      if (auto self = weak.lock()) self->wakeup_.notify();
    });
    while (!*reply) {
      co_await wakeup_.async_wait(use_awaitable);
      if (closed_) co_return;
    }
    admin::Reply& r = **reply;
    if (r.ok()) {
      for (auto& n : r.result->notices) protocol::encode::notice(out, n.message, n.detail);
      if (!r.result->columns.empty()) {
        std::vector<protocol::encode::Field> fields;
        for (auto& c : r.result->columns)
          fields.push_back({c.name, static_cast<int32_t>(c.type_oid), c.type_size});
        protocol::encode::row_description(out, fields);
        for (auto& row : r.result->rows) protocol::encode::data_row(out, row);
      }
      protocol::encode::command_complete(out, r.result->command_tag);
    } else {
      protocol::encode::error_response(out, "ERROR", r.sqlstate, r.error);
    }
    protocol::encode::ready_for_query(out, 'I');
    co_await write_gated(out);
  }
}

// ---- the pooler as the console's target ----

namespace {
int64_t unix_us(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}
std::string ptr_text(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%zx", reinterpret_cast<size_t>(p));
  return buf;
}
std::pair<std::string, int> split_peer(const std::string& peer) {
  auto colon = peer.rfind(':');
  if (colon == std::string::npos) return {peer, 0};
  return {peer.substr(0, colon), std::atoi(peer.c_str() + colon + 1)};
}
}  // namespace

admin::Snapshot Pooler::snapshot(admin::Show what) {
  admin::Snapshot snap;
  if (what == admin::Show::cache || what == admin::Show::cache_rules) {
    fill_cache_snapshot(snap);
    return snap;
  }
  auto now = std::chrono::steady_clock::now();
  snap.paused = paused_all_;
  snap.suspended = suspended_;
  for (auto& sample : sample_pools(pools_, now)) snap.pools.push_back(std::move(sample.row));
  for (auto& [key, e] : pools_) {
    for (ClientConn* c : e->clients()) {
      admin::ClientRow r;
      r.user = c->user();
      r.database = c->database();
      r.state = c->waiting() ? "waiting" : c->server() ? "active" : "idle";
      auto [addr, port] = split_peer(c->peer());
      r.addr = addr;
      r.port = port;
      r.local_addr = c->unix_socket() ? config_.daemon.unix_socket_dir : config_.daemon.listen_addr;
      r.local_port = config_.daemon.listen_port;
      r.tls = c->tls_description();
      r.connect_time_us = unix_us(c->connect_wall());
      r.request_time_us = r.connect_time_us;
      if (c->waiting())
        r.wait_us = std::chrono::duration_cast<std::chrono::microseconds>(now - c->wait_started()).count();
      r.ptr = ptr_text(c);
      if (c->server()) r.link = ptr_text(c->server().get());
      if (auto* app = c->session().params().get("application_name")) r.application_name = *app;
      r.prepared_statements = static_cast<int>(c->session().statements().size());
      r.id = c->id();
      snap.clients.push_back(r);
    }
    for (ServerConn* s : e->servers()) {
      admin::ServerRow r;
      r.user = e->server_user();
      r.database = key.first;
      switch (s->state()) {
        case ServerConn::State::connecting: r.state = "new"; break;
        case ServerConn::State::idle: r.state = s->check_due() ? "used" : "idle"; break;
        case ServerConn::State::active: r.state = "active"; break;
        case ServerConn::State::resetting:
        case ServerConn::State::testing: r.state = "tested"; break;
        case ServerConn::State::being_canceled: r.state = "being_canceled"; break;
        case ServerConn::State::closed: continue;
      }
      r.addr = e->target().host;
      r.port = e->target().port;
      r.local_addr = s->local_addr();
      r.local_port = s->local_port();
      r.close_needed = s->close_needed();
      r.connect_time_us = unix_us(s->connect_wall());
      r.request_time_us = r.connect_time_us;
      r.ptr = ptr_text(s);
      if (s->client()) r.link = ptr_text(s->client().get());
      r.remote_pid = s->backend_pid();
      r.tls = s->socket().tls_description();
      if (auto* app = s->session().params().get("application_name")) r.application_name = *app;
      r.prepared_statements = static_cast<int>(s->session().statements().size());
      snap.servers.push_back(r);
    }
  }
  for (auto& db : config_.databases) {
    admin::DatabaseRow r;
    r.name = db.name;
    try {
      auto t = pool::resolve_target(db, db.name, config_.daemon.unix_socket_dir);
      r.host = t.host;
      r.port = t.port;
      r.database = t.dbname;
      if (!t.user.empty()) r.force_user = t.user;
      r.pool_size = t.pool_size >= 0 ? t.pool_size : config_.daemon.default_pool_size;
      r.min_pool_size = t.min_pool_size >= 0 ? t.min_pool_size : config_.daemon.min_pool_size;
      r.reserve_pool_size = t.reserve_pool >= 0 ? t.reserve_pool : config_.daemon.reserve_pool_size;
      if (!t.pool_mode.empty()) r.pool_mode = t.pool_mode;
      r.max_connections = t.max_db_connections >= 0 ? t.max_db_connections : config_.daemon.max_db_connections;
    } catch (const std::exception&) {
    }
    r.server_lifetime = static_cast<int>(config_.daemon.server_lifetime);
    for (auto& [k, e] : pools_)
      if (k.first == db.name) {
        r.current_connections += e->queue().total();
        r.current_client_connections += static_cast<int>(e->clients().size());
        r.paused = r.paused || e->queue().paused();
      }
    r.disabled = disabled(db.name);
    snap.databases.push_back(r);
    admin::StatsRow st;
    st.database = db.name;
    st.totals = database_totals(pools_, db.name);
    st.averages = stats_averages_.of(db.name);
    snap.stats.push_back(st);
  }
  std::map<std::string, admin::UserRow> users;
  for (auto& [k, e] : pools_) {
    auto& u = users[k.second];
    u.name = k.second;
    u.max_user_connections = config_.daemon.max_user_connections;
    u.current_connections += e->queue().total();
    u.current_client_connections += static_cast<int>(e->clients().size());
  }
  for (auto& [name, u] : users) snap.users.push_back(u);
  for (auto& s : config::list_settings(config_)) {
    if (s.section != "pgcohered") continue;
    snap.config.push_back({s.key, s.secret ? "********" : s.value, s.default_value, !config::requires_restart(s.key)});
  }
  for (const Peers::Peer& p : peers_.list())
    snap.peers.push_back({p.id, p.host, p.port, p.pool_size, p.in_flight});
  snap.lists.peers = static_cast<int64_t>(snap.peers.size());
  snap.lists.peer_pools = snap.lists.peers;
  snap.lists.databases = static_cast<int64_t>(config_.databases.size());
  snap.lists.users = static_cast<int64_t>(users.size());
  snap.lists.pools = static_cast<int64_t>(pools_.size());
  snap.lists.used_clients = static_cast<int64_t>(listener_.all_clients().size());
  snap.lists.login_clients = static_cast<int64_t>(listener_.all_clients().size() - listener_.logged_in_count());
  for (auto& [k, e] : pools_) {
    snap.lists.free_servers += e->queue().idle_count();
    snap.lists.used_servers += e->queue().total() - e->queue().idle_count();
  }
  return snap;
}

void Pooler::pause(const std::string& database, Done done) {
  if (database.empty()) paused_all_ = true;
  for (auto& [k, e] : pools_)
    if (database.empty() || k.first == database) e->pause();
  if (!database.empty() && !config_.find_database(database)) {
    done("no such database: " + database);
    return;
  }
  pending_pauses_.push_back({database, std::move(done)});
  check_pauses();
}

// PAUSE answers once every server connection of the paused pools is back in the pool.
void Pooler::check_pauses() {
  check_wait_closes();
  for (auto it = pending_pauses_.begin(); it != pending_pauses_.end();) {
    bool busy = false;
    for (auto& [k, e] : pools_)
      if ((it->database.empty() || k.first == it->database) && e->queue().active() > 0) busy = true;
    if (busy) {
      ++it;
      continue;
    }
    auto done = std::move(it->done);
    it = pending_pauses_.erase(it);
    done("");
  }
}

void Pooler::resume(const std::string& database, Done done) {
  if (database.empty()) paused_all_ = false;
  if (suspended_ && database.empty()) {
    suspended_ = false;
    resumed_.cancel();  // every client SUSPEND held goes on
  }
  for (auto& [k, e] : pools_)
    if (database.empty() || k.first == database) e->resume();
  done("");
}

// Both run from a fresh handler, as SIGHUP and SIGTERM do, not inside the console's
// command: the application reloads or stops every service, this one included.
void Pooler::reload(Done done) {
  // The application re-reads the file, validates it and calls every service's reload();
  // a bad file is logged and the console still answers RELOAD, as PgBouncer does.
  boost::asio::post(io_, [this, done = std::move(done)] {
    control_.reload();
    done("");
  });
}

// SHUTDOWN: at once. SHUTDOWN WAIT_FOR_CLIENTS: PgBouncer 1.23's rolling restart (drain()).
// SHUTDOWN WAIT_FOR_SERVERS: once the server connections in use are released (drain_servers()).
void Pooler::shutdown(const std::string& mode, Done done) {
  done("");
  if (mode == "WAIT_FOR_SERVERS") boost::asio::post(io_, [this] { drain_servers(); });
  else if (mode == "WAIT_FOR_CLIENTS") boost::asio::post(io_, [this] { drain(); });
  else boost::asio::post(io_, [this] { control_.shutdown(); });
}

// SUSPEND: every client's next bytes (and every new login) wait until RESUME; what is
// under way (a forward, a query already sent) finishes. The listening socket stays open, so
// new connections queue rather than fail.
void Pooler::suspend(Done done) {
  suspended_ = true;
  done("");
}

awaitable<void> Pooler::wait_until_resumed() {
  while (suspended_) {
    boost::system::error_code ec;
    co_await resumed_.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

void Pooler::disable(const std::string& database, Done done) {
  if (!config_.find_database(database)) return done("no such database: " + database);
  disabled_.insert(database);
  done("");
}

void Pooler::enable(const std::string& database, Done done) {
  if (!config_.find_database(database)) return done("no such database: " + database);
  disabled_.erase(database);
  done("");
}

// RECONNECT: each server connection of the database(s) is closed when it is next released
// (idle ones now); new ones are made as clients need them.
void Pooler::reconnect(const std::string& database, Done done) {
  if (!database.empty() && !config_.find_database(database)) return done("no such database: " + database);
  std::vector<ServerConn*> idle;
  for (auto& [k, e] : pools_) {
    if (!database.empty() && k.first != database) continue;
    for (ServerConn* s : e->servers()) {
      s->set_close_needed();
      if (s->state() == ServerConn::State::idle) idle.push_back(s);
    }
  }
  for (auto* s : idle) s->close();  // finish() takes it out of the pool
  done("");
}

// WAIT_CLOSE: answers once no server connection of the database(s) is marked to close.
void Pooler::wait_close(const std::string& database, Done done) {
  if (!database.empty() && !config_.find_database(database)) return done("no such database: " + database);
  pending_wait_closes_.push_back({database, std::move(done)});
  check_wait_closes();
}

void Pooler::check_wait_closes() {
  for (auto it = pending_wait_closes_.begin(); it != pending_wait_closes_.end();) {
    bool left = false;
    for (auto& [k, e] : pools_)
      if (it->database.empty() || k.first == it->database)
        for (ServerConn* s : e->servers())
          if (s->close_needed() && s->state() != ServerConn::State::closed) left = true;
    if (left) {
      ++it;
      continue;
    }
    auto done = std::move(it->done);
    it = pending_wait_closes_.erase(it);
    done("");
  }
}

void Pooler::kill(const std::string& database, Done done) {
  if (!database.empty() && !config_.find_database(database)) {
    done("no such database: " + database);
    return;
  }
  std::vector<ClientConn*> clients;
  for (auto& [k, e] : pools_) {
    if (!database.empty() && k.first != database) continue;
    clients.insert(clients.end(), e->clients().begin(), e->clients().end());
    std::vector<ServerConn*> servers(e->servers().begin(), e->servers().end());
    for (auto* s : servers) s->close();
  }
  for (auto* c : clients) c->close();
  done("");
}

void Pooler::kill_client(std::int64_t id, Done done) {
  for (ClientConn* c : listener_.all_clients())
    if (c->id() == id) {
      c->close();
      done("");
      return;
    }
  done("no such client: " + std::to_string(id));
}


// ---- the query cache's part of the console ----

void Pooler::fill_cache_snapshot(admin::Snapshot& snap) {
  if (!cache_) {
    snap.cache_error = "the query cache is not enabled ([cache] enabled = 1)";
    return;
  }
  for (const auto& db : cache_->report()) {
    admin::CacheRow row;
    row.database = db.database;
    const auto& c = db.counters;
    row.hits = c.hits;
    row.misses = c.misses;
    row.stores = c.stores;
    row.stale_refused = c.stale_refused;
    row.not_stored = c.not_stored;
    row.bypassed = c.bypassed;
    row.uncacheable = c.uncacheable;
    row.redis_errors = c.redis_errors;
    row.single_flight_hits = c.single_flight_hits;
    row.bytes_stored = c.bytes_stored;
    row.invalidations = cache::invalidations_of(db.database);
    row.evictions = cache_->evictions();
    row.health = cache_->bypassed()        ? "bypassed"
                 : !cache_->healthy()      ? "redis down"
                 : !db.catalog_loaded      ? "loading policies"
                                           : "ok";
    snap.cache.push_back(std::move(row));
  }
  for (const auto& [database, r] : cache_->rules()) {
    admin::CacheRuleRow row;
    row.database = database;
    row.table = r.nspname + "." + r.relname;
    row.relid = r.relid;
    row.ttl_ms = r.ttl_ms;
    for (const auto& col : r.by_columns) row.by += (row.by.empty() ? "" : ",") + col;
    snap.cache_rules.push_back(std::move(row));
  }
}

void Pooler::cache_delete(const std::string& what, const std::string& value, CountDone done) {
  if (!cache_) return done(0, "the query cache is not enabled ([cache] enabled = 1)");
  if (what == "pattern") return cache_->delete_pattern(value, std::move(done));
  if (what == "table") {
    // Every database that has a cache-enabled table of that name.
    auto left = std::make_shared<std::size_t>(0);
    auto total = std::make_shared<std::int64_t>(0);
    auto found = std::make_shared<bool>(false);
    auto dbs = cache_->report();
    *left = dbs.size();
    if (dbs.empty()) return done(0, "no databases");
    auto shared_done = std::make_shared<CountDone>(std::move(done));
    for (const auto& db : dbs) {
      cache_->delete_table(db.database, value, [left, total, found, shared_done, value](std::int64_t n, std::string err) {
        if (err.empty()) *found = true;
        *total += n;
        if (--*left == 0) {
          if (*found) (*shared_done)(*total, {});
          else (*shared_done)(0, "no cache-enabled table named " + value);
        }
      });
    }
    return;
  }
  // A key as SHOW or redis-cli shows it: <namespace>{<database>}:e:<hash>.
  const std::string& ns = config_.cache.key_namespace;
  auto open = value.find('{');
  auto close = value.find("}:e:");
  if (value.rfind(ns, 0) != 0 || open != ns.size() || close == std::string::npos)
    return done(0, "not a cache entry key (" + ns + "{<database>}:e:<hash>): " + value);
  cache_->delete_entry(value.substr(open + 1, close - open - 1), value.substr(close + 4), std::move(done));
}

void Pooler::set(const std::string& key, const std::string& value, Done done) {
  if (key != "cache_bypass") {
    // A [pgcohered] key, applied like a reload (after this command, as RELOAD is).
    boost::asio::post(io_, [this, key, value, done = std::move(done)] { done(control_.set(key, value)); });
    return;
  }
  if (!cache_) return done("the query cache is not enabled ([cache] enabled = 1)");
  std::string v = value;
  for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  bool on = v == "1" || v == "on" || v == "true" || v == "yes";
  if (!on && v != "0" && v != "off" && v != "false" && v != "no")
    return done("cache_bypass takes 1/on/true or 0/off/false, not '" + value + "'");
  cache_->set_console_bypass(on);
  PGC_LOG_INFO << "admin console: cache_bypass = " << (on ? 1 : 0);
  done("");
}

}  // namespace pgcohere::pooler

// The pooler as the admin console's target: snapshots of pools, clients, servers and
// counters for SHOW, and PAUSE / RESUME / RELOAD / SHUTDOWN / KILL.
#include <cstdio>

#include <boost/asio/post.hpp>

#include "config/config.h"
#include "pooler/client_conn.h"
#include "pooler/pooler.h"
#include "pooler/server_conn.h"
#include "util/log.h"

namespace pgcohere::pooler {

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
      r.local_addr = config_.daemon.listen_addr;
      r.local_port = config_.daemon.listen_port;
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
      r.connect_time_us = unix_us(s->connect_wall());
      r.request_time_us = r.connect_time_us;
      r.ptr = ptr_text(s);
      if (s->client()) r.link = ptr_text(s->client().get());
      r.remote_pid = s->backend_pid();
      if (auto* app = s->session().params().get("application_name")) r.application_name = *app;
      r.prepared_statements = static_cast<int>(s->session().statements().size());
      snap.servers.push_back(r);
    }
  }
  for (auto& db : config_.databases) {
    admin::DatabaseRow r;
    r.name = db.name;
    try {
      auto t = pool::resolve_target(db, db.name);
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
    snap.config.push_back({s.key, s.value, s.default_value, true});
  }
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

void Pooler::shutdown(const std::string&, Done done) {
  done("");
  boost::asio::post(io_, [this] { control_.shutdown(); });
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

}  // namespace pgcohere::pooler

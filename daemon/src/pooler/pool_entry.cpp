// One pool (see pool_entry.h).
#include "pooler/pool_entry.h"

#include "pooler/client_conn.h"
#include "util/log.h"

namespace pgcohere::pooler {

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

namespace admission {

pool::PoolLimits limits_for(const pool::Target& t, const config::DaemonSettings& d) {
  pool::PoolLimits l;
  l.pool_size = t.pool_size >= 0 ? t.pool_size : d.default_pool_size;
  l.min_pool_size = t.min_pool_size >= 0 ? t.min_pool_size : d.min_pool_size;
  l.reserve_pool_size = t.reserve_pool >= 0 ? t.reserve_pool : d.reserve_pool_size;
  return l;
}

PoolMode mode_for(const pool::Target& t, const config::DaemonSettings& d) {
  return parse_pool_mode(t.pool_mode.empty() ? d.pool_mode : t.pool_mode);
}

int max_db_connections(const pool::Target& t, const config::DaemonSettings& d) {
  return t.max_db_connections >= 0 ? t.max_db_connections : d.max_db_connections;
}

bool may_open_server(int db_connections, int user_connections, int max_db, int max_user) {
  return (max_db <= 0 || db_connections < max_db) && (max_user <= 0 || user_connections < max_user);
}

}  // namespace admission

PoolEntry::PoolEntry(std::string db, std::string server_user, pool::Target target, metrics::Histogram& queue_wait_ms,
                     metrics::Histogram& xact_duration_ms)
    : queue_(std::move(db), server_user, pool::PoolLimits{}),
      target_(std::move(target)),
      server_user_(std::move(server_user)),
      queue_wait_ms_(queue_wait_ms),
      xact_duration_ms_(xact_duration_ms) {}

void PoolEntry::configure(const config::DaemonSettings& d) {
  mode_ = admission::mode_for(target_, d);
  queue_.set_limits(admission::limits_for(target_, d));
}

void PoolEntry::set_hooks(std::function<void()> launch, std::function<bool()> may_open,
                          std::function<bool(const ServerConn&)> check_due,
                          std::function<void(std::shared_ptr<ServerConn>)> check) {
  queue_.set_launcher(std::move(launch));
  queue_.set_admission(std::move(may_open));
  queue_.set_checker(std::move(check_due), std::move(check));
}

std::shared_ptr<ServerConn> PoolEntry::link() {
  auto s = queue_.try_acquire();
  if (s) queue_wait_ms_.observe(0);
  return s;
}

void PoolEntry::waited(std::chrono::microseconds how_long) {
  stats_.wait_time_us += static_cast<std::uint64_t>(how_long.count());
  queue_wait_ms_.observe(static_cast<double>(how_long.count()) / 1000.0);
  stats_.wait_count++;
}

void PoolEntry::remember_credentials(auth::ServerCredentials creds) {
  if (!target_.password.empty()) return;
  if (!creds.empty() && creds.user == server_user_) credentials_ = std::move(creds);
}

void PoolEntry::connect_failed(const std::string& error, std::chrono::steady_clock::time_point now) {
  stats_.server_connect_errors++;
  last_connect_error_ = error;
  login_retry_.failed(now, error);
}

std::optional<std::string> PoolEntry::refusal(std::chrono::steady_clock::time_point now, double login_retry) const {
  // A connection that exists or is being opened may still serve the client: it waits.
  if (queue_.total() > 0) return std::nullopt;
  auto why = login_retry_.refusal(now, login_retry);
  if (!why) return std::nullopt;
  return "server login failed: " + *why;
}

void PoolEntry::retry_login(std::chrono::steady_clock::time_point now, double login_retry) {
  if (login_retry_.failing() && queue_.waiting() > 0 && login_retry_.may_try(now, login_retry)) queue_.retry_launch();
}

PoolEntry::~PoolEntry() = default;

void PoolEntry::admit(ClientConn* c) {
  clients_.insert(*c);
  awake_.insert(*c);
}

void PoolEntry::leave(ClientConn* c) {
  clients_.erase(*c);
  awake_.erase(*c);
}

void PoolEntry::parked(ClientConn* c) { awake_.erase(*c); }

void PoolEntry::woke(ClientConn* c) {
  if (static_cast<PoolClientsHook&>(*c).is_linked()) awake_.insert(*c);  // still this pool's client
}

void PoolEntry::learn_defaults(const session::ParamMap& params) {
  if (defaults_known_) return;
  server_defaults_ = params;
  defaults_known_ = true;
}

void PoolEntry::release(std::shared_ptr<ServerConn> s) { queue_.release(std::move(s)); }

std::vector<std::shared_ptr<ServerConn>> PoolEntry::take_surplus_idle() { return queue_.take_surplus_idle(); }

void PoolEntry::wait(ClientConn* c) { queue_.wait(c); }

void PoolEntry::stop_waiting(ClientConn* c) { queue_.cancel(c); }

void PoolEntry::connected(std::shared_ptr<ServerConn> s) {
  login_retry_.succeeded();
  queue_.connected(std::move(s));
}

void PoolEntry::checked(std::shared_ptr<ServerConn> s) { queue_.checked(std::move(s)); }

void PoolEntry::ensure_min() { queue_.ensure_min(); }

void PoolEntry::use_reserve() { queue_.use_reserve(); }

void PoolEntry::pause() { queue_.pause(); }

void PoolEntry::resume() { queue_.resume(); }

void PoolEntry::retire(ServerConn& s, ServerConn::State was, const std::string& why) {
  switch (was) {
    case ServerConn::State::connecting:
      queue_.connect_failed("server login failed: " + why);
      break;
    case ServerConn::State::idle:
      queue_.remove_idle(&s);
      break;
    case ServerConn::State::active:
    case ServerConn::State::resetting:
    case ServerConn::State::being_canceled:
      queue_.discard_active();
      break;
    case ServerConn::State::testing:
      stats_.server_check_failures++;
      PGC_LOG_WARN << "server " << s.backend_pid() << " failed server_check_query (" << why << "): closing it";
      queue_.check_failed();
      break;
    case ServerConn::State::closed:
      break;
  }
}

auth::ServerCredentials PoolEntry::server_credentials(const auth::UserList* users) const {
  auth::ServerCredentials c;
  if (!target().password.empty()) {
    c.user = server_user();
    c.password = target().password;
    return c;
  }
  if (!credentials_.empty()) return credentials_;
  // A forced user ([databases] user=) without a password: its auth_file entry.
  c.user = server_user();
  if (users && users->find(server_user())) {
    // ClientAuth knows how each kind of auth_file secret maps to server credentials.
    auth::ClientAuth probe("trust", users, server_user());
    probe.begin();
    c = probe.credentials();
  }
  return c;
}

}  // namespace pgcohere::pooler

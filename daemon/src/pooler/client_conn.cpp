// Client connections (see client_conn.h).
#include "pooler/client_conn.h"

#include <openssl/rand.h>
#include <sys/socket.h>

#include <cerrno>
#include <utility>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "auth/exchange.h"
#include "auth/hba.h"
#include "cache/request.h"
#include "cache/session_change.h"
#include "cache/session_switch.h"
#include "net/exact_allocator.h"
#include "pooler/cancel_key.h"
#include "pooler/notify_hub.h"
#include "pooler/pooler.h"
#include "pooler/server_conn.h"
#include "protocol/ssl_negotiation.h"
#include "util/log.h"

// g++ 12 misreads Asio 1.18's coroutine frame allocator (a known false positive).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace pgcohere::pooler {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

namespace {
std::string normalize_encoding(std::string v) {
  std::string lower;
  for (char c : v) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (lower == "utf8" || lower == "utf-8" || lower == "unicode") return "UTF8";
  for (auto& c : v) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return v;
}

// PgBouncer likewise caps what a client may send before it has logged in.
constexpr uint32_t kLoginMaxPacket = 8192;

// The statement text a Query or a Parse carries; empty for every other message.
std::string_view statement_text(const protocol::Frame& f) {
  if (f.type == 'Q') {
    if (auto q = protocol::parse_query(f.body)) return q.value();
  } else if (f.type == 'P') {
    if (auto p = protocol::parse_parse(f.body)) return p.value().query;
  }
  return {};
}

}  // namespace

ClientConn::ClientConn(Pooler& pooler, net::Stream::Socket socket, bool unix_socket)
    : pooler_(pooler),
      socket_(std::move(socket)),
      unix_socket_(unix_socket),
      // Until login only small messages (startup, password, SASL) are legitimate: a client
      // that has not authenticated cannot make us buffer max_packet_size bytes.
      decoder_(protocol::FrameDecoder::Side::frontend, kLoginMaxPacket),
      connected_at_(Clock::now()) {
  static int64_t next_id = 1;
  id_ = next_id++;
  pooler_.track(this, true);
  boost::system::error_code ec;
  if (!unix_socket_) net::apply_tcp_options(socket_.lowest().native_handle(), pooler_.tcp_options());
  socket_.lowest().non_blocking(true, ec);  // read_more() reads synchronously once the socket is readable
  // PgBouncer shows a Unix-socket client as address "unix" with the listening port.
  peer_ = unix_socket_ ? "unix:" + std::to_string(pooler_.settings().listen_port)
                       : net::Stream::peer_name(socket_.lowest());
}

ClientConn::~ClientConn() {
  in_.detach(pooler_.client_buffers());
  if (entry_) entry_->leave(this);  // finish() left already, unless the session never ran to its end
  pooler_.track(this, false);
}

void ClientConn::start() {
  asio::co_spawn(pooler_.io(), [self = shared_from_this()]() { return self->run(false); }, asio::detached);
}

// A parked client holds no coroutine (its frames are about 2 kB, most of an idle client's
// memory): only this wait, whose handler starts serving again. Clients park right after
// their login and when the janitor finds them quiet (park_if_quiet); a busy client never
// does, since waking costs a coroutine spawn (about 3,400 instructions, 30-40 % more than
// the pooler otherwise spends on a whole `pgbench -S` transaction).
struct ClientConn::ParkedWait {
  std::shared_ptr<ClientConn> self;
  using allocator_type = net::ExactAllocator<void>;
  allocator_type get_allocator() const noexcept { return {}; }
  void operator()(const boost::system::error_code& ec) { self->unpark(ec); }
};

void ClientConn::park() {
  pooler_.count_parked(1);
  if (entry_) entry_->parked(this);
  in_.detach(pooler_.client_buffers());
  socket_.lowest().async_wait(asio::socket_base::wait_read, ParkedWait{shared_from_this()});
}

void ClientConn::unpark(const boost::system::error_code& ec) {
  pooler_.count_parked(-1);
  if (entry_) entry_->woke(this);
  if (ec || closed_) {  // close() (operation_aborted) or a socket error: the session is over
    finish();
    return;
  }
  asio::co_spawn(pooler_.io(), [self = shared_from_this()]() { return self->run(true); }, asio::detached);
}

void ClientConn::close() {
  closed_ = true;
  boost::system::error_code ec;
  socket_.close(ec);
  wakeup_.notify();
}

void ClientConn::grant(std::shared_ptr<ServerConn> server) {
  server->link(shared_from_this());
  server_ = std::move(server);
  wakeup_.notify();
}

void ClientConn::fail(const std::string& why) {
  if (waiting_) {
    fail_reason_ = why;
    wakeup_.notify();
    return;
  }
  // Linked and the server connection died, or a timeout, or a pool-mode violation: the
  // client's session cannot go on. Say why, then close. A forward of the server's answer
  // may be under way: the error goes after it, never into the middle of it.
  if (dying_ || closed_) return;
  dying_ = true;
  if (write_gate_.try_enter()) {
    write_last_error(why);
    return;
  }
  write_gate_.async_enter(
      asio::bind_executor(socket_.get_executor(), [self = shared_from_this(), why] { self->write_last_error(why); }));
}

void ClientConn::write_last_error(const std::string& why) {
  if (closed_ || mid_message_ || socket_.tls_handshaking()) {
    // Cut inside a message: an ErrorResponse would be read as part of it. Closing is the
    // only well-formed ending left. (In a TLS handshake, e.g. one that never ends before
    // client_login_timeout, there is no channel to write on either.)
    close();
    write_gate_.leave();
    return;
  }
  auto self = shared_from_this();
  auto msg = std::make_shared<std::string>();
  protocol::encode::error_response(*msg, "FATAL", "08P01", why);
  asio::async_write(socket_, asio::buffer(*msg), [self, msg](const boost::system::error_code&, size_t) {
    self->close();
    self->write_gate_.leave();
  });
}

awaitable<void> ClientConn::write_gated(std::string_view out) {
  if (!write_gate_.try_enter()) co_await write_gate_.async_enter(use_awaitable);
  boost::system::error_code ec;
  if (!mid_message_) co_await asio::async_write(socket_, asio::buffer(out), asio::redirect_error(use_awaitable, ec));
  write_gate_.leave();
  if (ec) throw boost::system::system_error(ec);
}

awaitable<boost::system::error_code> ClientConn::forward(std::string_view out, bool mid_message) {
  if (!write_gate_.try_enter()) co_await write_gate_.async_enter(use_awaitable);
  mid_message_ = mid_message;
  auto ec = co_await socket_.write_all(out);
  write_gate_.leave();
  co_return ec;
}

awaitable<size_t> ClientConn::read_more(bool may_park) {
  // An idle client holds no read buffer: with nothing pending (and, in TLS, nothing that
  // OpenSSL holds already, which no wait for a readable socket would see) it waits with
  // none and takes one from the pool when data is there.
  bool tls = socket_.tls();
  if (!in_.empty() || socket_.tls_pending()) {
    in_.attach(pooler_.client_buffers());
    co_return co_await socket_.async_read_some(asio::buffer(in_.tail(), in_.tail_size()), use_awaitable);
  }
  in_.detach(pooler_.client_buffers());
  for (;;) {
    parkable_ = may_park;
    boost::system::error_code ec;
    co_await socket_.lowest().async_wait(asio::socket_base::wait_read, asio::redirect_error(use_awaitable, ec));
    parkable_ = false;
    bool cut = std::exchange(park_requested_, false);  // also when data won the race with the cancel
    if (ec == asio::error::operation_aborted && cut && !closed_) co_return 0;  // park_if_quiet() cut the wait
    if (ec) throw boost::system::system_error(ec);
    in_.attach(pooler_.client_buffers());
    if (tls) co_return co_await socket_.async_read_some(asio::buffer(in_.tail(), in_.tail_size()), use_awaitable);
    size_t n = socket_.lowest().read_some(asio::buffer(in_.tail(), in_.tail_size()), ec);
    if (!ec) co_return n;
    if (ec != asio::error::would_block && ec != asio::error::try_again) throw boost::system::system_error(ec);
  }
}

void ClientConn::park_if_quiet() {
  // Only the wait for the next request may be cut, and only with no write under way: a
  // cancel ends every operation on the socket.
  if (!parkable_ || server_ || waiting_ || closed_ || dying_ || write_gate_.busy()) return;
  park_requested_ = true;
  boost::system::error_code ignored;
  socket_.lowest().cancel(ignored);
}

awaitable<size_t> ClientConn::read_now() {
  in_.attach(pooler_.client_buffers());
  if (socket_.tls()) co_return co_await socket_.async_read_some(asio::buffer(in_.tail(), in_.tail_size()), use_awaitable);
  boost::system::error_code ec;
  size_t n = socket_.lowest().read_some(asio::buffer(in_.tail(), in_.tail_size()), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) co_return 0;  // a spurious wakeup
  if (ec) throw boost::system::system_error(ec);
  co_return n;
}

awaitable<void> ClientConn::send_fatal(std::string_view sqlstate, std::string_view message) {
  std::string out;
  protocol::encode::error_response(out, "FATAL", sqlstate, message);
  co_await write_gated(out);
}

awaitable<void> ClientConn::run(bool woken) {
  auto self = shared_from_this();
  bool parked = false;
  try {
    if (woken || co_await login()) parked = co_await serve(woken);
  } catch (const boost::system::system_error& e) {
    if (e.code() != asio::error::eof && e.code() != asio::error::operation_aborted &&
        e.code() != asio::error::connection_reset) {
      PGC_LOG_DEBUG << "client " << peer_ << ": " << e.what();
    }
  } catch (const std::exception& e) {
    PGC_LOG_WARN << "client " << peer_ << ": " << e.what();
  }
  if (!parked) finish();
}

void ClientConn::finish() {
  closed_ = true;
  if (auto hub = notify_hub()) hub->unlisten_all(*this);  // nothing of its LISTENs survives it
  if (waiting_) entry_->stop_waiting(this);
  if (auto s = server_) {
    s->unlink();
    s->client_gone();
  }
  if (registered_) pooler_.remove_client(this);
  if (entry_) entry_->leave(this);
  if (pooler_.settings().log_disconnections && entry_) {
    PGC_LOG_DEBUG << "closing client " << peer_ << " db=" << database_ << " user=" << user_;
  }
  boost::system::error_code ec;
  if (!dying_) socket_.close(ec);  // else fail() closes it once its error is written
}

void ClientConn::finish_login() {
  registered_ = true;
  pooler_.logged_in(this);
  decoder_.set_max_packet_size(static_cast<uint32_t>(std::max(1024, pooler_.settings().max_packet_size)));
}

// A failed login (wrong password, unknown user, an auth_hba_file rule that rejects it) is
// logged and answered only after auth_failure_delay, as PostgreSQL's auth_delay does, so a
// password guesser gets a few tries a second per connection. Only this client's coroutine
// waits, on a timer: other clients, and logins of the same user with the right password, go
// on at once; nothing is locked out. The log line has a budget a second, since an attacker
// decides how often it is written.
awaitable<void> ClientConn::refuse_login(std::string_view sqlstate, std::string_view message, std::string_view reason) {
  std::uint64_t held_back = 0;
  if (pooler_.auth_failure_log().admit(Clock::now(), held_back)) {
    PGC_LOG_WARN << "client " << peer_ << " db=" << database_ << " user=" << user_ << ": login failed: " << reason
                 << (held_back ? " (" + std::to_string(held_back) + " failed logins before it not logged)" : "");
  }
  double delay = pooler_.settings().auth_failure_delay;
  if (delay > 0) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer.expires_after(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(delay)));
    co_await timer.async_wait(use_awaitable);
  }
  co_await send_fatal(sqlstate, message);
}

awaitable<bool> ClientConn::authenticate() {
  auto& d = pooler_.settings();
  std::string auth_type = d.auth_type;
  if (auth_type == "hba") {
    // auth_hba_file decides the method for this connection, as pg_hba.conf would.
    auth::HbaConnection conn;
    conn.local = unix_socket_;
    conn.tls = socket_.tls();
    conn.address = net::Stream::peer_address(socket_.lowest());
    conn.database = database_;
    conn.user = user_;
    const auth::HbaRule* rule = pooler_.hba() ? auth::match_hba(*pooler_.hba(), conn) : nullptr;
    std::string who = "host \"" + (conn.local ? std::string("[local]") : conn.address) + "\", user \"" + user_ +
                      "\", database \"" + database_ + (conn.tls ? "\", SSL encryption" : "\", no encryption");
    if (!rule || rule->method == auth::HbaMethod::reject || rule->method == auth::HbaMethod::peer) {
      // Named, not temporaries of the co_await expression: g++ 12 destroys a ?: temporary
      // there twice (a double free, found by tests/test_pool_hba.py).
      std::string message = (rule ? "pg_hba.conf rejects connection for " : "no pg_hba.conf entry for ") + who;
      std::string reason = rule ? "rejected by auth_hba_file line " + std::to_string(rule->line) : "no auth_hba_file rule";
      co_await refuse_login("28000", message, reason);
      co_return false;
    }
    auth_type = std::string(auth::auth_type_for(rule->method));
  }
  const auth::UserList* users = pooler_.users();
  auth::UserList looked_up;
  if (auth_type != "any" && entry_ && !(users && users->find(user_))) {
    // Not in auth_file: auth_user looks the user's secret up in PostgreSQL (auth_query).
    std::optional<AuthQuery> query;
    std::string bad_config;
    try {
      query = pooler_.auth_query_for(*entry_);
    } catch (const std::exception& e) {
      bad_config = e.what();
    }
    if (!bad_config.empty()) {
      co_await send_fatal("08P01", bad_config);
      co_return false;
    }
    if (query) {
      auto found = co_await pooler_.auth_lookup().find(*query, user_);
      if (!found.error.empty()) {
        PGC_LOG_WARN << "client " << peer_ << " db=" << database_ << " user=" << user_
                     << ": auth_query failed: " << found.error;
        co_await send_fatal("08P01", "auth_query failed: " + found.error);
        co_return false;
      }
      if (found.entry) looked_up.add(std::move(*found.entry));
      users = &looked_up;
    }
  }
  auth::ClientAuth exchange(auth_type, users, user_);
  auto step = exchange.begin();
  for (;;) {
    std::string out;
    if (step.send) protocol::encode::authentication(out, static_cast<int32_t>(step.send->code), step.send->data);
    if (step.state == auth::ClientAuth::State::failure) {
      std::string message = "password authentication failed for user \"" + user_ + "\"";
      std::string reason = "authentication failed: " + step.reason;
      co_await refuse_login("28P01", message, reason);
      co_return false;
    }
    if (step.state == auth::ClientAuth::State::success) {
      if (step.send && step.send->code != auth::AuthCode::ok) protocol::encode::authentication(out, 0);
      co_await write_gated(out);
      break;
    }
    co_await write_gated(out);
    // The client's answer: one 'p' message.
    for (;;) {
      auto f = decoder_.next(in_.unconsumed());
      if (f.kind == protocol::Frame::Kind::message) {
        if (f.type != 'p') {
          co_await send_fatal("08P01", "expected a password message");
          co_return false;
        }
        step = exchange.on_password_message(f.body);
        in_.consume(f.consumed);
        break;
      }
      if (f.kind != protocol::Frame::Kind::need_more) {
        co_await send_fatal("08P01", "invalid password packet");
        co_return false;
      }
      size_t n = co_await read_more();
      in_.produced(n);
    }
  }
  // Server logins of this pool use these credentials unless [databases] gives a password.
  if (entry_) entry_->remember_credentials(exchange.credentials());
  co_return true;
}

awaitable<bool> ClientConn::login() {
  auto& d = pooler_.settings();
  protocol::StartupPacket startup;
  for (;;) {
    auto f = protocol::next_startup_frame(in_.unconsumed());
    if (f.kind == protocol::StartupFrame::Kind::error) {
      co_await send_fatal("08P01", f.error);
      co_return false;
    }
    if (f.kind == protocol::StartupFrame::Kind::need_more) {
      size_t n = co_await read_more();
      in_.produced(n);
      continue;
    }
    auto p = protocol::parse_startup_packet(f.packet);
    in_.consume(f.consumed);
    // The login may wait (for the pool's first server connection, for auth_query): only a
    // client with bytes pending keeps a read buffer through it.
    if (in_.empty()) in_.detach(pooler_.client_buffers());
    if (!p) {
      co_await send_fatal("08P01", p.error());
      co_return false;
    }
    using Kind = protocol::StartupPacket::Kind;
    if (p->kind == Kind::ssl_request) {
      if (!co_await answer_ssl_request()) co_return false;
      continue;
    }
    if (p->kind == Kind::gssenc_request) {
      char no = 'N';  // no GSSAPI encryption; the client may ask for TLS or go on in plain text
      co_await write_gated(std::string_view(&no, 1));
      continue;
    }
    if (p->kind == Kind::cancel_request) {
      pooler_.cancel(p->cancel_pid, p->cancel_key);
      co_return false;
    }
    startup = std::move(p.value());
    break;
  }
  if (protocol::client_tls_required(pooler_.client_tls().mode, unix_socket_) && !socket_.tls()) {
    PGC_LOG_WARN << "client " << peer_ << ": refused, client_tls_sslmode = "
                 << protocol::ssl_mode_name(pooler_.client_tls().mode) << " and it did not ask for TLS";
    co_await send_fatal("08P01", "SSL required");
    co_return false;
  }
  const std::string* user = startup.find("user");
  if (!user || user->empty()) {
    co_await send_fatal("08P01", "no username supplied");
    co_return false;
  }
  user_ = *user;
  const std::string* db = startup.find("database");
  database_ = db && !db->empty() ? *db : user_;
  for (auto& [k, v] : startup.params) {
    if (k == "user" || k == "database" || !pooler_.tracked().canonical(k).empty()) continue;
    if (std::find(d.ignore_startup_parameters.begin(), d.ignore_startup_parameters.end(), k) !=
        d.ignore_startup_parameters.end())
      continue;
    co_await send_fatal("08P01", "unsupported startup parameter: " + k);
    co_return false;
  }
  if (!pooler_.admit_client()) {
    co_await send_fatal("53300", "no more connections allowed (max_client_conn)");
    co_return false;
  }
  if (database_ == "pgcohere" || database_ == "pgbouncer") {
    auto listed = [&](const std::vector<std::string>& names) {
      return std::find(names.begin(), names.end(), user_) != names.end();
    };
    bool admin_user = listed(d.admin_users);
    if (!admin_user && !listed(d.stats_users)) {
      co_await send_fatal("28000", "not allowed to connect to the admin console (admin_users, stats_users)");
      co_return false;
    }
    if (!co_await authenticate()) co_return false;
    admin_ = true;
    finish_login();
    std::string out;
    static const std::vector<std::pair<std::string, std::string>> params = {
        {"server_version", "15.0 (pgcohered " PGCOHERE_VERSION ")"}, {"client_encoding", "UTF8"},
        {"server_encoding", "UTF8"}, {"DateStyle", "ISO"}, {"TimeZone", "UTC"},
        {"standard_conforming_strings", "on"}, {"integer_datetimes", "on"}, {"application_name", ""}};
    for (auto& [k, v] : params) protocol::encode::parameter_status(out, k, v);
    protocol::encode::backend_key_data(out, 0, 0);
    protocol::encode::ready_for_query(out, 'I');
    co_await write_gated(out);
    co_await serve_admin(admin_user);
    co_return false;
  }
  if (pooler_.disabled(database_)) {
    co_await send_fatal("08P01", "database \"" + database_ + "\" is disabled (DISABLE in the admin console)");
    co_return false;
  }
  if (pooler_.suspended()) co_await pooler_.wait_until_resumed();  // SUSPEND holds new logins
  if (closed_) co_return false;
  std::string error;
  entry_ = pooler_.find_pool(database_, user_, error);
  if (!entry_) {
    co_await send_fatal("08P01", error);
    co_return false;
  }
  if (!co_await authenticate()) co_return false;
  std::uint32_t random = 0;  // with peer_id, the pid also says which process this is
  RAND_bytes(reinterpret_cast<unsigned char*>(&random), sizeof random);
  RAND_bytes(reinterpret_cast<unsigned char*>(&cancel_key_), sizeof cancel_key_);
  cancel_pid_ = cancel_keys::make_pid(pooler_.peer_id(), random);
  pooler_.add_client(this);
  entry_->admit(this);
  finish_login();
  if (d.log_connections) {
    PGC_LOG_DEBUG << "login: " << peer_ << " db=" << database_ << " user=" << user_;
  }

  // The pool cannot log in to PostgreSQL right now (server_login_retry): say so at once.
  if (auto why = entry_->refusal(Clock::now(), d.server_login_retry)) {
    co_await send_fatal("08P01", *why);
    co_return false;
  }
  std::string out;
  if (!entry_->defaults_known()) {
    // The first client of a pool learns the server's parameters from a real login.
    if (!try_link() && !co_await acquire()) co_return false;
    // Clients that logged in together all waited for a connection just to learn these;
    // give it back unused even in session mode, or the first pool_size clients would keep
    // every connection and the others would wait for ever.
    auto s = std::move(server_);
    s->give_back_unused();
  }
  auto& tracked = pooler_.tracked();
  session_.params().reserve(tracked.names().size());
  for (auto& [k, v] : entry_->server_defaults().entries())
    if (!tracked.canonical(k).empty()) session_.params().set(k, v);
  for (auto& [k, v] : startup.params) {
    auto name = tracked.canonical(k);
    if (name.empty()) continue;
    session_.params().set(name, name == "client_encoding" ? normalize_encoding(v) : v);
  }
  entry_->share_login_params(session_.params());
  for (auto& [k, v] : entry_->server_defaults().entries()) {
    const std::string* mine = session_.params().get(k);
    protocol::encode::parameter_status(out, k, mine ? *mine : v);
  }
  for (auto& [k, v] : session_.params().entries())
    if (!entry_->server_defaults().get(k)) protocol::encode::parameter_status(out, k, v);
  protocol::encode::backend_key_data(out, cancel_pid_, cancel_key_);
  protocol::encode::ready_for_query(out, 'I');
  co_await write_gated(out);
  co_return true;
}

awaitable<bool> ClientConn::answer_ssl_request() {
  if (socket_.tls()) {
    co_await send_fatal("08P01", "SSLRequest received inside TLS");
    co_return false;
  }
  // A client that sent more than the SSLRequest before our answer could have its plain
  // bytes taken as if they came through TLS (CVE-2021-23214): refuse it.
  if (!in_.empty()) {
    co_await send_fatal("08P01", "received unencrypted data after SSL request");
    co_return false;
  }
  net::TlsSide tls = pooler_.client_tls();  // this connection keeps the context it starts with
  char answer = protocol::answer_ssl_request(tls.mode, unix_socket_);
  co_await write_gated(std::string_view(&answer, 1));
  if (answer != 'S') co_return true;
  boost::system::error_code ec;
  co_await socket_.accept_tls(tls.context, ec);
  if (ec) {
    if (!closed_) {
      PGC_LOG_WARN << "client " << peer_ << ": TLS handshake failed: " << ec.message();
    }
    co_return false;
  }
  co_return true;
}

bool ClientConn::try_link() {
  if (pooler_.waiting_for_servers()) return false;  // acquire() says why
  auto s = entry_->link();
  if (!s) return false;
  s->link(shared_from_this());
  server_ = std::move(s);
  return true;
}

// Called after try_link() found nothing: a second try could start another
// server_check_query for the same client.
awaitable<bool> ClientConn::acquire() {
  // SHUTDOWN WAIT_FOR_SERVERS: a new transaction would hold the shutdown up (PgBouncer's words).
  if (pooler_.waiting_for_servers()) {
    co_await send_fatal("08P01", "server shutting down");
    co_return false;
  }
  // The pool cannot log in to PostgreSQL and has no connection to wait for: say why now
  // rather than after query_wait_timeout.
  if (auto why = entry_->refusal(Clock::now(), pooler_.settings().server_login_retry)) {
    co_await send_fatal("08P01", *why);
    co_return false;
  }
  waiting_ = true;
  timed_out_ = false;
  canceled_ = false;
  fail_reason_.clear();
  wait_started_ = Clock::now();
  entry_->wait(this);
  // wait() may already have served or failed this client; a notify() before the
  // async_wait would be lost.
  if (!server_ && fail_reason_.empty()) {
    ++wait_generation_;
    watched_ = false;  // the janitor starts watching the socket if the wait lasts
    co_await wakeup_.async_wait(use_awaitable);
  }
  waiting_ = false;
  entry_->waited(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - wait_started_));
  if (server_) co_return true;
  entry_->stop_waiting(this);
  if (closed_ || canceled_) co_return false;
  if (!fail_reason_.empty()) {
    co_await send_fatal("08P01", fail_reason_);
    co_return false;
  }
  // query_wait_timeout: PgBouncer's words, then the connection is closed.
  std::string out;
  protocol::encode::error_response(out, "ERROR", "08P01", "query_wait_timeout");
  co_await write_gated(out);
  co_return false;
}

void ClientConn::watch_while_waiting() {
  if (!waiting_ || watched_ || closed_) return;
  watched_ = true;
  watch_while_waiting(wait_generation_);
}

void ClientConn::watch_while_waiting(std::uint64_t generation) {
  socket_.lowest().async_wait(asio::socket_base::wait_read, [self = shared_from_this(), generation](
                                                        const boost::system::error_code& ec) {
    if (ec || !self->waiting_ || generation != self->wait_generation_ || self->closed_) return;
    // Peek, do not read: bytes that are not a goodbye stay for serve() once a server is
    // linked (a pipelined request).
    char head[5];
    ssize_t n = ::recv(self->socket_.lowest().native_handle(), head, sizeof head, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      self->watch_while_waiting(generation);
      return;
    }
    // EOF, a reset, or a Terminate ('X', length 4): the client is gone; close() wakes
    // acquire(), which takes it out of the queue.
    bool gone = n <= 0 || head[0] == 'X';
    if (gone) {
      PGC_LOG_DEBUG << "client " << self->peer_ << " left while waiting for a server connection";
      self->close();
    }
  });
}

void ClientConn::cancel_wait() {
  if (!waiting_) return;
  canceled_ = true;
  entry_->stop_waiting(this);
  wakeup_.notify();
}

awaitable<void> ClientConn::answer_canceled(const protocol::Frame& f) {
  // As PostgreSQL answers a cancel: the request fails with 57014; in the extended protocol
  // the rest of the batch is skipped up to its Sync, which gets the ReadyForQuery.
  std::string out;
  protocol::encode::error_response(out, "ERROR", "57014", "canceling statement due to user request");
  bool batch_ended = f.kind != protocol::Frame::Kind::message || f.type == 'Q' || f.type == 'F' || f.type == 'S';
  if (batch_ended) protocol::encode::ready_for_query(out, 'I');
  else skipping_to_sync_ = true;
  co_await write_gated(out);
}

void ClientConn::sync_parameters(std::string& out) {
  auto& sp = server_->session().params();
  // Most links pair a client and a server that already agree: skip the comparison when
  // neither side changed since this server last matched these client values.
  if (server_->synced(session_.params().fingerprint(), sp.version())) return;
  std::string set = session::sync_sql(pooler_.tracked(), session_.params(), sp);
  if (!set.empty()) {
    protocol::encode::query(out, set);
    server_->session().sent_internal_query();
    return;  // the SETs change the server's version: compared again next time
  }
  server_->mark_synced(session_.params().fingerprint(), sp.version());
}

awaitable<std::size_t> ClientConn::try_session_switch(std::string_view data) {
  auto sw = cache::session_switch(data);
  if (!sw) co_return 0;
  cache_bypass_ = sw->bypass;
  std::string out;
  protocol::encode::command_complete(out, sw->command_tag);
  protocol::encode::ready_for_query(out, 'I');
  co_await write_gated(out);
  co_return sw->consumed;
}

awaitable<void> ClientConn::replay(const std::string& reply) {
  std::string out;
  out.reserve(reply.size() + 6);
  out.append(reply);
  protocol::encode::ready_for_query(out, 'I');
  entry_->count_bytes_sent(out.size());
  co_await write_gated(out);
}

void ClientConn::note_session_change(std::string_view sql) {
  if (sql.empty() || !cache::changes_unseen_session_state(sql)) return;
  cache_blind_ = true;
  PGC_LOG_DEBUG << "client " << peer_ << ": its session's search_path, role, extra_float_digits or "
                << "bytea_output may have changed; the query cache no longer answers it";
}

bool ClientConn::named_statements_cached() const {
  // Session pooling: session_ follows the server's names (follow_sent); transaction
  // pooling: they are the pooler's own, unless max_prepared_statements = 0 passes them on.
  return entry_->mode() == PoolMode::session || pooler_.settings().max_prepared_statements > 0;
}

bool ClientConn::may_be_answered(const protocol::Frame& f, std::string_view sql) {
  if (f.type == 'Q' && cache::starts_like_set(sql)) return true;  // SET pgcohere.cache_bypass
  if (f.type == 'B') {  // a batch that binds a named statement: its text is the statement's
    auto bind = protocol::parse_bind_head(f.body);
    if (!bind || bind->statement.empty() || !named_statements_cached()) return false;
    const session::Statement* s = session_.statements().find(bind->statement);
    if (!s) return false;
    sql = s->query;
  } else if (f.type != 'Q' && f.type != 'P') {
    return false;
  }
  return pooler_.cache()->may_answer(database_, sql);
}

awaitable<std::size_t> ClientConn::try_cache(std::string_view data) {
  auto* cache = pooler_.cache();
  bool named = named_statements_cached();
  auto request = cache::recognize(data, [this, named](std::string_view name) -> std::optional<cache::NamedStatement> {
    const session::Statement* s = named ? session_.statements().find(name) : nullptr;
    if (!s) return std::nullopt;
    return cache::NamedStatement{s->query, s->param_types};
  });
  if (!request) co_return 0;
  const std::string* server_encoding = entry_->server_defaults().get("server_encoding");
  auto plan = cache->plan({database_, user_, session_.params(), cache_bypass_ || cache_blind_,
                           server_encoding ? std::string_view(*server_encoding) : std::string_view("UTF8")},
                          *request);
  if (!plan) co_return 0;
  auto self = shared_from_this();  // the lookup outlives nothing of ours otherwise
  auto found = co_await cache->lookup(database_, *plan, published_);
  if (closed_ || dying_) co_return 0;
  using Kind = cache::CacheService::Lookup::Kind;
  if (found.kind == Kind::hit) {
    co_await replay(found.reply);
    co_return request->consumed;
  }
  if (found.kind == Kind::skip) co_return 0;
  if (!cache->lead(database_, *plan, found.lease)) {
    // An identical miss is running: wait for its reply rather than run the query again.
    auto reply = co_await cache->follow(database_, *plan);
    if (closed_ || dying_) co_return 0;
    if (reply) {
      co_await replay(*reply);
      co_return request->consumed;
    }
    co_return 0;
  }
  if (found.kind == Kind::busy) {
    // Another daemon leads this fill: wait for its entry (identical misses here follow
    // this one), or lead once it gives up.
    found = co_await cache->await_remote_fill(database_, *plan, published_);
    if (found.kind == Kind::hit) {
      cache->end_flight(database_, *plan, found.reply);
      if (closed_ || dying_) co_return 0;
      co_await replay(found.reply);
      co_return request->consumed;
    }
    if (found.kind == Kind::miss) cache->adopt_lease(database_, *plan, found.lease);
    if (found.kind != Kind::miss || closed_ || dying_) {
      cache->end_flight(database_, *plan, std::nullopt);
      co_return 0;
    }
  }
  pending_fill_ = std::make_unique<cache::PendingFill>(*cache, database_, std::move(*plan), std::move(found.versions),
                                                       cache->max_entry_bytes());
  co_return 0;
}

awaitable<void> ClientConn::end_prepare_batch() {
  auto s = server_;
  std::string sync;
  protocol::encode::sync(sync);
  s->session().sent_closing_sync();
  writing_ = true;
  boost::system::error_code ec;
  co_await asio::async_write(s->socket(), asio::buffer(sync), asio::redirect_error(use_awaitable, ec));
  writing_ = false;
  if (ec) co_return;  // the server connection is gone; its own loop tells the pool
  co_await wait_for_server_answers();
  if (server_ == s) s->maybe_release();
}

awaitable<bool> ClientConn::serve(bool woken) {
  auto& d = pooler_.settings();
  bool rewrite = entry_->mode() != PoolMode::session && d.max_prepared_statements > 0;
  std::string out;
  bool listen_waits = false;  // a LISTEN must wait for the answers to what was sent before it
  // Right after the login: what the client sent behind its startup packet (trust auth lets
  // it, as PostgreSQL does) runs at once; with nothing there, the client parks at once.
  bool read_ahead = !woken && !in_.empty();
  bool park_now = !woken && in_.empty() && !socket_.tls_pending();
  for (;;) {
    if (listen_waits) {
      listen_waits = false;
      co_await wait_for_server_answers();
      if (dying_ || closed_) co_return false;
    } else if (read_ahead) {
      read_ahead = false;
    } else {
      // Between requests the coroutine waits (the cheap path for a busy client) until the
      // janitor finds the client quiet and cuts the wait: read_more() then returns 0.
      size_t n = 0;
      if (woken) {
        woken = false;  // readable when the parked wait ended: read without waiting again
        n = co_await read_now();
      } else if (!park_now) {
        n = co_await read_more(true);
      }
      park_now = false;
      if (n == 0) {
        park();
        co_return true;
      }
      if (pooler_.suspended()) co_await pooler_.wait_until_resumed();  // SUSPEND holds new traffic
      if (dying_ || closed_) co_return false;
      last_activity_ = Clock::now();
      in_.produced(n);
      entry_->count_bytes_received(n);
    }
    out.clear();
    bool terminate = false;
    for (;;) {
      std::string_view data = in_.unconsumed();
      auto f = decoder_.next(data);
      if (f.kind == protocol::Frame::Kind::need_more) break;
      if (f.kind == protocol::Frame::Kind::error) {
        PGC_LOG_WARN << "client " << peer_ << ": " << f.error;
        co_await send_fatal("08P01", f.error);
        co_return false;
      }
      if (f.kind == protocol::Frame::Kind::message && f.type == 'X') {
        terminate = true;
        in_.consume(f.consumed);
        break;
      }
      if (skipping_to_sync_) {  // the rest of a canceled batch (answer_canceled)
        in_.consume(f.consumed);
        if (f.kind == protocol::Frame::Kind::message && f.type == 'S') {
          skipping_to_sync_ = false;
          std::string z;
          protocol::encode::ready_for_query(z, 'I');
          co_await write_gated(z);
        }
        continue;
      }
      std::string_view sql = f.kind == protocol::Frame::Kind::message ? statement_text(f) : std::string_view();
      if (pooler_.cache() && !cache_blind_) note_session_change(sql);
      if (f.kind == protocol::Frame::Kind::message && f.type == 'Q' && entry_->mode() != PoolMode::session) {
        // Transaction pooling: LISTEN and UNLISTEN are the pooler's (notify_hub.h).
        auto request = notify::recognize(sql);
        if (request && request->mixed && !request->has_listen()) {
          apply_unlistens(*request);  // and the string goes to a server as usual
        } else if (request) {
          if (!out.empty() || (server_ && server_->session().requests_in_flight())) {
            listen_waits = true;
            break;
          }
          if (!co_await answer_listen(*request)) co_return false;
          in_.consume(f.consumed);
          continue;
        }
      }
      if (f.kind == protocol::Frame::Kind::message && (f.type == 'P' || f.type == 'B' || f.type == 'C') &&
          entry_->mode() != PoolMode::session) {
        if (f.type != 'C' && starts_listen_batch(f)) {
          if (!out.empty() || (server_ && server_->session().requests_in_flight())) {
            listen_waits = true;
            break;
          }
          std::size_t answered = co_await answer_listen_batch(data);
          if (answered == kListenGone) co_return false;
          if (answered == kListenNeedMore) break;  // the rest of the batch is still on its way
          if (answered) {
            in_.consume(answered);
            continue;
          }
        }
        forget_listen_statement(f);
      }
      if (server_ && out.empty() && f.kind == protocol::Frame::Kind::message && f.type == 'B' &&
          entry_->mode() != PoolMode::session && pooler_.cache() && server_->session().only_prepares_open() &&
          may_be_answered(f, sql)) {
        // asyncpg's first run of a statement: its Parse/Describe/Flush holds a server, and
        // the Bind/Execute/Sync that follows may be a hit. A Sync of ours ends that batch
        // (nothing the client sees: no statement ran in it) and gives the server back.
        co_await end_prepare_batch();
        if (dying_ || closed_) co_return false;
      }
      // Between transactions the query cache may answer (or a pooler-level SET): with no
      // server linked, or, in session pooling, with the session's server idle.
      bool between_transactions =
          !server_ || (entry_->mode() == PoolMode::session && server_->session().idle() && !pending_fill_);
      if (between_transactions && out.empty() && f.kind == protocol::Frame::Kind::message && pooler_.cache() &&
          may_be_answered(f, sql)) {
        std::size_t answered = co_await try_session_switch(data);
        if (!answered) answered = co_await try_cache(data);
        if (dying_ || closed_) co_return false;
        if (answered) {
          in_.consume(answered);
          continue;
        }
      }
      if (!server_) {
        if (!try_link() && !co_await acquire()) {
          if (!canceled_ || closed_ || dying_) co_return false;
          // A CancelRequest for this client while it was queued (pgbouncer#1314).
          canceled_ = false;
          co_await answer_canceled(f);
          in_.consume(f.consumed);
          continue;
        }
        sync_parameters(out);
      }
      if (f.kind == protocol::Frame::Kind::message && entry_->mode() == PoolMode::session && pooler_.cache())
        session_.follow_sent(f.type, f.body, sql);
      if (f.kind == protocol::Frame::Kind::passthrough) {
        out.append(data.substr(0, f.consumed));
      } else if (!session_.translate(f.type, data.substr(0, f.consumed), f.body, server_->session(),
                                     pooler_.statements(), rewrite, out)) {
        co_await send_fatal("08P01", "invalid message from client");
        co_return false;
      }
      in_.consume(f.consumed);
    }
    if (!out.empty()) {
      auto s = server_;
      s->query_sent();
      if (pending_fill_) pending_fill_->dispatched();
      writing_ = true;
      auto ec = co_await s->socket().write_all(out);
      writing_ = false;
      if (ec) co_return false;  // the server connection is gone; its own loop tells the pool
      if (server_ == s) s->maybe_release();
    }
    if (terminate) co_return false;
    if (in_.capacity() > 1024 * 1024) in_.shrink(64 * 1024);
  }
}

}  // namespace pgcohere::pooler

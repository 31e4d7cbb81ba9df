// Server connections (see server_conn.h).
#include "pooler/server_conn.h"

#include <netinet/in.h>

#include <cstring>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "pooler/cancel_request.h"
#include "pooler/client_conn.h"
#include "pooler/pooler.h"
#include "protocol/messages.h"
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
using generic_stream = asio::generic::stream_protocol;

ServerConn::ServerConn(Pooler& pooler, PoolEntry& entry)
    : pooler_(pooler),
      entry_(entry),
      socket_(pooler.io()),
      deadline_(pooler.io()),
      session_(static_cast<size_t>(std::max(1, pooler.settings().max_prepared_statements))),
      decoder_(protocol::FrameDecoder::Side::backend) {
  entry_.attach(this);
}

ServerConn::~ServerConn() { entry_.detach(this); }

void ServerConn::start() {
  asio::co_spawn(pooler_.io(), [self = shared_from_this()]() { return self->run(); }, asio::detached);
}

void ServerConn::close() {
  boost::system::error_code ec;
  socket_.close(ec);
  deadline_.cancel();
}

void ServerConn::link(const std::shared_ptr<ClientConn>& client) {
  client_ = client;
  state_ = State::active;
  last_used_ = Clock::now();
}

void ServerConn::unlink() {
  if (client_) client_->set_server(nullptr);
  client_.reset();
}

awaitable<void> ServerConn::run() {
  auto self = shared_from_this();
  std::string error;
  entry_.count_server_connect();
  try {
    error = co_await connect_and_login();
  } catch (const std::exception& e) {
    error = e.what();
  }
  deadline_.cancel();
  if (!error.empty()) {
    entry_.connect_failed(error, Clock::now());
    PGC_LOG_WARN << "server connection to " << pool::describe(entry_.target()) << " db=" << entry_.target().dbname
                 << " user=" << entry_.server_user() << " failed: " << error;
    finish(error);
    co_return;
  }
  connected_at_ = last_used_ = Clock::now();
  entry_.learn_defaults(session_.params());
  state_ = State::idle;
  entry_.connected(self);  // may hand it straight to a waiting client
  try {
    co_await read_loop();
  } catch (const boost::system::system_error& e) {
    error = e.code() == asio::error::eof ? "server closed the connection" : e.code().message();
  } catch (const std::exception& e) {
    error = e.what();
  }
  finish(error.empty() ? "closed" : error);
}

void ServerConn::finish(const std::string& why) {
  if (finished_) return;
  finished_ = true;
  State was = state_;
  state_ = State::closed;
  close();
  entry_.retire(*this, was, why);
  if (auto c = client_) {
    // The client's transaction is gone with this connection: tell it, then drop it
    // (PgBouncer: "server conn crashed?").
    unlink();
    c->fail("server conn crashed?");
  }
}

awaitable<std::string> ServerConn::connect_and_login() {
  auto& t = entry_.target();
  auto& d = pooler_.settings();
  boost::system::error_code ec;
  if (d.server_connect_timeout > 0) {
    deadline_.expires_after(std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(d.server_connect_timeout)));
    deadline_.async_wait([self = shared_from_this()](const boost::system::error_code& e) {
      if (!e && self->state_ == State::connecting) self->close();
    });
  }
  bool unix_socket = !t.host.empty() && t.host[0] == '/';
  if (unix_socket) {
    endpoint_ = generic_stream::endpoint(
        asio::local::stream_protocol::endpoint(t.host + "/.s.PGSQL." + std::to_string(t.port)));
  } else {
    asio::ip::tcp::resolver resolver(pooler_.io());
    auto results = co_await resolver.async_resolve(t.host, std::to_string(t.port),
                                                   asio::redirect_error(use_awaitable, ec));
    if (ec || results.empty()) co_return "could not resolve " + t.host + ": " + ec.message();
    endpoint_ = generic_stream::endpoint(results.begin()->endpoint());
  }
  socket_.lowest().open(endpoint_.protocol(), ec);
  if (ec) co_return ec.message();
  co_await socket_.lowest().async_connect(endpoint_, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return (ec == asio::error::operation_aborted ? "server_connect_timeout" : ec.message());
  if (!unix_socket) {
    net::apply_tcp_options(socket_.lowest().native_handle(), pooler_.tcp_options());
    auto local = socket_.lowest().local_endpoint(ec);
    asio::ip::tcp::endpoint tcp_local;
    if (!ec && local.size() <= tcp_local.capacity()) {
      std::memcpy(tcp_local.data(), local.data(), local.size());
      tcp_local.resize(local.size());
      local_addr_ = tcp_local.address().to_string();
      local_port_ = tcp_local.port();
    }
  }
  if (protocol::server_tls_requested(pooler_.server_tls().mode, unix_socket)) {
    std::string error = co_await negotiate_tls(t.host);
    if (!error.empty()) co_return error;
  }

  std::string out;
  protocol::Params params{{"user", entry_.server_user()}, {"database", t.dbname}};
  for (auto& [k, v] : t.startup) params.emplace_back(k, v);
  protocol::encode::startup_message(out, params);
  co_await asio::async_write(socket_, asio::buffer(out), use_awaitable);

  for (;;) {
    auto f = decoder_.next(in_.unconsumed());
    if (f.kind == protocol::Frame::Kind::error) co_return "protocol error: " + f.error;
    if (f.kind != protocol::Frame::Kind::message) {
      size_t n = co_await socket_.async_read_some(asio::buffer(in_.tail(), in_.tail_size()),
                                                  asio::redirect_error(use_awaitable, ec));
      if (ec) co_return (ec == asio::error::operation_aborted ? "server_connect_timeout" : ec.message());
      in_.produced(n);
      continue;
    }
    std::string_view body = f.body;
    char type = f.type;
    std::string reply;
    switch (type) {
      case 'R': {
        auto a = protocol::parse_authentication(body);
        if (!a) co_return a.error();
        if (!auth_) auth_.emplace(entry_.server_credentials(pooler_.users()));
        auto step = auth_->on_request(a->code, a->data);
        if (!step.error.empty()) co_return step.error;
        if (step.send) protocol::encode::password_message(reply, *step.send, false);
        break;
      }
      case 'S':
        session_.on_message(type, body);
        break;
      case 'K': {
        auto k = protocol::parse_backend_key_data(body);
        if (!k) co_return k.error();
        backend_pid_ = k->pid;
        backend_key_ = k->key;
        break;
      }
      case 'E': {
        auto e = protocol::parse_error_fields(body);
        co_return e ? std::string(e->get('M')) : "server error";
      }
      case 'Z':
        in_.consume(f.consumed);
        co_return "";
      default:
        break;  // NoticeResponse and the like
    }
    in_.consume(f.consumed);
    if (!reply.empty()) co_await asio::async_write(socket_, asio::buffer(reply), use_awaitable);
  }
}

awaitable<std::string> ServerConn::negotiate_tls(const std::string& host) {
  net::TlsSide tls = pooler_.server_tls();  // this connection keeps the context it starts with
  std::string request;
  protocol::encode::ssl_request(request);
  boost::system::error_code ec;
  co_await asio::async_write(socket_, asio::buffer(request), asio::redirect_error(use_awaitable, ec));
  // Exactly one byte: whatever follows 'S' must go through TLS, never be taken as plain
  // text (CVE-2021-23222).
  char answer = 0;
  if (!ec) co_await asio::async_read(socket_.lowest(), asio::buffer(&answer, 1), asio::redirect_error(use_awaitable, ec));
  if (ec) co_return (ec == asio::error::operation_aborted ? "server_connect_timeout" : ec.message());
  auto step = protocol::on_ssl_answer(tls.mode, answer);
  if (step.kind == protocol::ServerTlsStep::Kind::fail) co_return step.error;
  if (step.kind == protocol::ServerTlsStep::Kind::plain) co_return "";
  co_await socket_.connect_tls(tls.context, host, protocol::server_host_checked(tls.mode), ec);
  if (ec == asio::error::operation_aborted) co_return "server_connect_timeout";
  if (ec) co_return "TLS handshake with the server failed: " + ec.message();
  co_return "";
}

awaitable<void> ServerConn::read_loop() {
  std::string out;
  for (;;) {
    size_t n = co_await socket_.async_read_some(asio::buffer(in_.tail(), in_.tail_size()), use_awaitable);
    last_activity_ = Clock::now();
    in_.produced(n);
    out.clear();
    bool batch_done = false;
    bool statement_violation = false;
    for (;;) {
      std::string_view data = in_.unconsumed();
      auto f = decoder_.next(data);
      if (f.kind == protocol::Frame::Kind::need_more) break;
      if (f.kind == protocol::Frame::Kind::error) throw std::runtime_error("server protocol error: " + f.error);
      if (f.kind == protocol::Frame::Kind::passthrough) {
        if (client_) {
          out.append(data.substr(0, f.consumed));
          if (client_->capturing()) client_->capture_fragment();
        }
        in_.consume(f.consumed);
        continue;
      }
      auto v = session_.on_message(f.type, f.body);
      if (client_) {
        if (f.type == 'S') {
          auto ps = protocol::parse_parameter_status(f.body);
          if (ps) {
            auto name = pooler_.tracked().canonical(ps->name);
            if (!name.empty()) client_->session().params().set(name, ps->value);
            // The extension reports each commit that invalidated something (read-your-writes).
            if (ps->name == "pgcohere.published") client_->note_published(ps->value);
          }
        }
        if (v.statements_reset) client_->session().statements().clear();
        if (v.forward && (f.type == '1' || f.type == 'Z') && entry_.mode() == PoolMode::session)
          client_->session().follow_reply(f.type);
        if (v.forward) {
          // LISTEN in transaction pooling: notifications wait for the end of the transaction.
          if (f.type == 'Z' && client_->has_notifications() && session_.tx_status() == 'I')
            client_->take_notifications(out);
          out.append(data.substr(0, f.consumed));
          if (client_->capturing()) client_->capture(f.type, data.substr(0, f.consumed));
        }
      } else if (f.type == 'E') {
        auto e = protocol::parse_error_fields(f.body);
        if (state_ == State::testing) check_failed_ = true;  // maybe_release closes it
        if (e) {
          PGC_LOG_WARN << "server " << backend_pid_ << " said: " << e->get('S') << ": " << e->get('M');
        }
      }
      if (v.batch_done) {
        batch_done = true;
        if (state_ != State::testing) entry_.count_query();
        if (query_started_ != Clock::time_point{}) {
          entry_.count_query_time(std::chrono::duration_cast<std::chrono::microseconds>(last_activity_ - query_started_));
          query_started_ = session_.requests_in_flight() ? last_activity_ : Clock::time_point{};
        }
        if (client_ && entry_.mode() == PoolMode::statement && session_.tx_status() != 'I' &&
            !session_.requests_in_flight()) {
          // Statement pooling cannot keep a transaction open across statements: the client
          // gets PgBouncer's error instead of this ReadyForQuery, and both sides are closed.
          if (v.forward) out.resize(out.size() - f.consumed);
          statement_violation = true;
          in_.consume(f.consumed);
          break;
        }
      }
      in_.consume(f.consumed);
    }
    if (session_.failed()) throw std::runtime_error("server sent a malformed message");
    if (!out.empty() && client_) {
      auto c = client_;
      entry_.count_bytes_sent(out.size());
      // One writer at a time on the client socket: a timeout's error or another server
      // connection's answer (pipelined requests) waits for this forward to end.
      auto ec = co_await c->forward(out, decoder_.streaming());
      if (ec) c->close();  // the client's own loop notices and gives this connection back
    }
    if (statement_violation && client_) {
      auto c = client_;
      unlink();
      c->fail("transaction blocks not allowed in statement pooling mode");
      throw std::runtime_error("statement pooling mode violated");
    }
    if (in_.capacity() > 1024 * 1024) in_.shrink(64 * 1024);
    if (batch_done) maybe_release();
  }
}

void ServerConn::maybe_release() {
  if (state_ == State::closed) return;
  if (!client_) {
    if (state_ == State::resetting && session_.idle()) {
      give_back();
    } else if (state_ == State::testing && !session_.requests_in_flight()) {
      if (close_needed_) {
        close();  // RECONNECT came during the check
        return;
      }
      if (check_failed_ || session_.tx_status() != 'I') {
        close();  // finish() reports the failed check to the pool
        return;
      }
      PGC_LOG_DEBUG << "server " << backend_pid_ << " passed server_check_query";
      check_due_ = false;
      state_ = State::idle;
      last_used_ = Clock::now();
      entry_.checked(shared_from_this());
    }
    return;
  }
  if (client_->writing_to_server() || entry_.mode() == PoolMode::session) return;
  if (session_.requests_in_flight()) return;
  if (session_.tx_status() == 'I') {
    unlink();
    auto now = Clock::now();
    entry_.count_xact(std::chrono::duration_cast<std::chrono::microseconds>(now - last_used_));
    last_used_ = now;
    double lifetime = pooler_.settings().server_lifetime;
    if (lifetime > 0 && std::chrono::duration<double>(last_used_ - connected_at_).count() > lifetime) {
      close();  // server_lifetime: retire it instead of reusing it (finish() tells the pool)
      return;
    }
    give_back(now);
    return;
  }
}

void ServerConn::retire_when_released() {
  retire_ = true;
  if (state_ == State::idle) close();  // finish() tells the pool
}

void ServerConn::give_back(Clock::time_point now) {
  last_used_ = now;
  if (retire_ || close_needed_) {
    close();  // finish() tells the pool
    return;
  }
  if (cancels_in_flight_ > 0) {
    // PostgreSQL may still deliver the cancel: it would hit the next client's query
    // (PgBouncer's being_canceled). The last cancel to finish gives it back.
    state_ = State::being_canceled;
    return;
  }
  auto& d = pooler_.settings();
  check_due_ = d.server_check_delay <= 0 && !d.server_check_query.empty();  // 0: check every reuse
  state_ = State::idle;
  entry_.release(shared_from_this());
}

void ServerConn::give_back_unused() {
  unlink();
  if (state_ == State::closed) return;
  give_back();
}

void ServerConn::start_check() {
  auto self = shared_from_this();
  state_ = State::testing;
  check_failed_ = false;
  const std::string& q = pooler_.settings().server_check_query;
  auto msg = std::make_shared<std::string>();
  protocol::encode::query(*msg, q == "<empty>" ? std::string() : q);  // PgBouncer 1.25's empty query
  session_.sent_internal_query();
  entry_.count_server_check();
  PGC_LOG_DEBUG << "server " << backend_pid_ << ": running server_check_query";
  asio::async_write(socket_, asio::buffer(*msg), [self, msg](const boost::system::error_code& ec, size_t) {
    if (ec) self->close();  // read_loop ends and finish() reports the failed check
  });
}

void ServerConn::client_gone() {
  auto self = shared_from_this();
  client_.reset();
  if (state_ == State::closed) return;
  if (entry_.mode() == PoolMode::session && session_.idle() && !pooler_.settings().server_reset_query.empty()) {
    std::string q;
    protocol::encode::query(q, pooler_.settings().server_reset_query);
    session_.sent_internal_query();
    state_ = State::resetting;
    // The buffer must live until the write ends: the handler owns it.
    auto msg = std::make_shared<std::string>(std::move(q));
    asio::async_write(socket_, asio::buffer(*msg), [self, msg](const boost::system::error_code& ec, size_t) {
      if (ec) self->close();
    });
    return;
  }
  if (session_.idle()) {
    give_back();
    return;
  }
  // Mid-transaction or mid-query: closing is the only way to be sure nothing of this
  // client's transaction survives into another client's.
  close();
}

void ServerConn::send_cancel() {
  if (backend_pid_ == 0 || state_ == State::closed) return;
  cancels_in_flight_++;
  double limit_s = pooler_.settings().server_connect_timeout > 0 ? pooler_.settings().server_connect_timeout : 15;
  auto limit = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limit_s));
  asio::co_spawn(
      pooler_.io(),
      [self = shared_from_this(), ep = endpoint_, pid = backend_pid_, key = backend_key_, limit,
       &io = pooler_.io()]() -> awaitable<void> {
        bool certain = co_await send_cancel_request(io, ep, pid, key, limit);
        self->cancel_finished(certain);
      },
      asio::detached);
}

void ServerConn::cancel_finished(bool certain) {
  cancels_in_flight_--;
  if (!certain) retire_ = true;
  if (cancels_in_flight_ == 0 && state_ == State::being_canceled) give_back();
}

}  // namespace pgcohere::pooler

// auth_query lookups (see auth_lookup.h).
#include "pooler/auth_lookup.h"

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>

#include "auth/exchange.h"
#include "pooler/pooler.h"
#include "protocol/frame.h"
#include "protocol/messages.h"
#include "protocol/wire.h"
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

namespace {

// Parse (unnamed, types inferred), Bind with the user name as the one text parameter,
// Execute, Sync.
std::string query_messages(const std::string& query, const std::string& user) {
  std::string out;
  protocol::encode::parse(out, "", query, {});
  std::string rest;  // parameter formats: all text; the user name; result formats: all text
  protocol::Writer(rest).i16(0).i16(1).i32(static_cast<int32_t>(user.size())).bytes(user).i16(0);
  protocol::encode::bind(out, "", "", rest);
  protocol::Writer execute(out);
  execute.begin('E').cstr("").i32(0);  // the unnamed portal, all rows
  execute.end();
  protocol::encode::sync(out);
  return out;
}

// The second column of a DataRow, or nullopt for NULL; error set when malformed.
std::optional<std::string> secret_column(std::string_view body, std::string& error) {
  protocol::Reader r(body);
  auto n = r.i16();
  if (!n || *n < 2) {
    error = "auth_query must return two columns (user name, secret)";
    return std::nullopt;
  }
  std::optional<std::string> value;
  for (int col = 0; col < 2; ++col) {
    auto len = r.i32();
    if (!len) break;
    if (*len < 0) {
      value.reset();
      continue;
    }
    auto bytes = r.bytes(static_cast<size_t>(*len));
    if (!bytes) {
      error = "malformed DataRow";
      return std::nullopt;
    }
    value = std::string(*bytes);
  }
  return value;
}

}  // namespace

awaitable<AuthLookup::Result> AuthLookup::find(const AuthQuery& q, const std::string& user) {
  std::string key = pool::describe(q.target) + '\0' + q.target.dbname + '\0' + q.auth_user + '\0' + q.query + '\0' + user;
  double ttl = pooler_.settings().auth_query_cache_ttl;
  if (auto cached = cache_.find(key, auth::SecretCache::Clock::now(), ttl)) co_return Result{std::move(cached), ""};
  if (auto it = flights_.find(key); it != flights_.end()) {
    // The same user is being looked up for another login: share its answer.
    auto flight = it->second;
    auto wakeup = std::make_shared<net::Wakeup>();
    flight->waiters.push_back(wakeup);
    co_await wakeup->async_wait(use_awaitable);
    co_return *flight->result;
  }
  auto flight = std::make_shared<Flight>();
  flights_[key] = flight;
  Result r;
  try {
    r = co_await run(q, user);
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  if (r.entry) cache_.put(key, *r.entry, auth::SecretCache::Clock::now(), ttl);
  flight->result = r;
  flights_.erase(key);
  for (auto& w : flight->waiters) w->notify();
  co_return r;
}

awaitable<AuthLookup::Result> AuthLookup::run(AuthQuery q, std::string user) {
  auto& io = pooler_.io();
  auto& d = pooler_.settings();
  const pool::Target& t = q.target;
  queries_++;
  PGC_LOG_DEBUG << "auth_query for user " << user << " as " << q.auth_user << " in " << pool::describe(t)
                << " db=" << t.dbname;
  struct Conn {
    explicit Conn(asio::io_context& io) : socket(io), deadline(io) {}
    generic_stream::socket socket;
    asio::steady_timer deadline;
    bool timed_out = false;
  };
  auto conn = std::make_shared<Conn>(io);
  // Connect, login and query together are bounded like a server login.
  if (d.server_connect_timeout > 0) {
    conn->deadline.expires_after(std::chrono::duration_cast<asio::steady_timer::duration>(
        std::chrono::duration<double>(d.server_connect_timeout)));
    conn->deadline.async_wait([conn](const boost::system::error_code& ec) {
      if (ec) return;
      conn->timed_out = true;
      boost::system::error_code ignored;
      conn->socket.close(ignored);
    });
  }
  struct CancelDeadline {
    std::shared_ptr<Conn> c;
    ~CancelDeadline() {
      c->deadline.cancel();
      boost::system::error_code ignored;
      c->socket.close(ignored);
    }
  } cancel_deadline{conn};
  auto fail = [&](const std::string& why) {
    Result r;
    r.error = conn->timed_out ? "server_connect_timeout" : why;
    return r;
  };

  boost::system::error_code ec;
  generic_stream::endpoint endpoint;
  if (!t.host.empty() && t.host[0] == '/') {
    endpoint = generic_stream::endpoint(
        asio::local::stream_protocol::endpoint(t.host + "/.s.PGSQL." + std::to_string(t.port)));
  } else {
    asio::ip::tcp::resolver resolver(io);
    auto results =
        co_await resolver.async_resolve(t.host, std::to_string(t.port), asio::redirect_error(use_awaitable, ec));
    if (ec || results.empty()) co_return fail("could not resolve " + t.host + ": " + ec.message());
    endpoint = generic_stream::endpoint(results.begin()->endpoint());
  }
  conn->socket.open(endpoint.protocol(), ec);
  if (ec) co_return fail(ec.message());
  co_await conn->socket.async_connect(endpoint, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return fail(ec.message());

  std::string out;
  protocol::encode::startup_message(
      out, {{"user", q.auth_user}, {"database", t.dbname}, {"application_name", "pgcohered auth_query"}});
  co_await asio::async_write(conn->socket, asio::buffer(out), asio::redirect_error(use_awaitable, ec));
  if (ec) co_return fail(ec.message());

  // auth_user logs in with its auth_file entry, or the [databases] entry's password when
  // that entry names auth_user as its user.
  auth::ServerCredentials creds;
  creds.user = q.auth_user;
  if (!t.password.empty() && t.user == q.auth_user) {
    creds.password = t.password;
  } else if (auto* users = pooler_.users(); users && users->find(q.auth_user)) {
    auth::ClientAuth probe("trust", users, q.auth_user);
    probe.begin();
    creds = probe.credentials();
  }
  auth::ServerAuth login(creds);

  protocol::FrameDecoder decoder(protocol::FrameDecoder::Side::backend);
  std::string in;
  bool logged_in = false;
  bool got_row = false;
  Result result;
  for (;;) {
    auto f = decoder.next(in);
    if (f.kind == protocol::Frame::Kind::error) co_return fail("protocol error: " + f.error);
    if (f.kind == protocol::Frame::Kind::passthrough) co_return fail("auth_query returned an oversized row");
    if (f.kind == protocol::Frame::Kind::need_more) {
      char buf[4096];
      size_t n = co_await conn->socket.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
      if (ec) co_return fail(ec == asio::error::eof ? "server closed the connection" : ec.message());
      in.append(buf, n);
      continue;
    }
    char type = f.type;
    std::string body(f.body);
    in.erase(0, f.consumed);
    std::string reply;
    switch (type) {
      case 'R': {
        auto a = protocol::parse_authentication(body);
        if (!a) co_return fail(a.error());
        auto step = login.on_request(a->code, a->data);
        if (!step.error.empty()) co_return fail("login as auth_user " + q.auth_user + ": " + step.error);
        if (step.send) protocol::encode::password_message(reply, *step.send, false);
        break;
      }
      case 'E': {
        auto e = protocol::parse_error_fields(body);
        std::string msg = e ? std::string(e->get('M')) : "server error";
        co_return fail(logged_in ? msg : "login as auth_user " + q.auth_user + ": " + msg);
      }
      case 'D':
        if (!got_row) {
          got_row = true;
          std::string error;
          auto secret = secret_column(body, error);
          if (!error.empty()) co_return fail(error);
          if (secret && !secret->empty()) {
            auth::UserEntry entry;
            entry.name = user;
            entry.secret = std::move(*secret);
            entry.kind = auth::classify_secret(entry.secret);
            result.entry = std::move(entry);
          }
        }
        break;
      case 'Z':
        if (!logged_in) {
          logged_in = true;
          reply = query_messages(q.query, user);
          break;
        }
        out.clear();
        protocol::encode::terminate(out);
        co_await asio::async_write(conn->socket, asio::buffer(out), asio::redirect_error(use_awaitable, ec));
        co_return result;
      default:
        break;  // ParameterStatus, BackendKeyData, ParseComplete, BindComplete, CommandComplete, notices
    }
    if (!reply.empty()) {
      co_await asio::async_write(conn->socket, asio::buffer(reply), asio::redirect_error(use_awaitable, ec));
      if (ec) co_return fail(ec.message());
    }
  }
}

}  // namespace pgcohere::pooler

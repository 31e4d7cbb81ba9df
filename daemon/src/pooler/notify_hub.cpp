// The per-database LISTEN connection and its fan-out (see notify_hub.h).
#include "pooler/notify_hub.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "auth/exchange.h"
#include "notify/listen_statement.h"
#include "pooler/client_conn.h"
#include "pooler/pool_entry.h"
#include "pooler/pooler.h"
#include "protocol/frame.h"
#include "protocol/messages.h"
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
constexpr double kRetryMin = 0.1, kRetryMax = 5;  // seconds between reconnects (doubling)
}  // namespace

NotifyHub::NotifyHub(Pooler& pooler, PoolEntry& entry)
    : pooler_(pooler), entry_(entry), database_(entry.queue().database()), socket_(pooler.io()), timer_(pooler.io()) {}

NotifyHub::~NotifyHub() { stop(); }

void NotifyHub::stop() {
  stopped_ = true;
  close_socket();
  timer_.cancel();
}

void NotifyHub::close_socket() {
  boost::system::error_code ec;
  socket_.close(ec);
}

void NotifyHub::listen(ClientConn& client, const std::string& channel, Done done) {
  Id id = static_cast<Id>(client.id());
  clients_[id] = &client;
  bool fresh = registry_.subscribe(id, channel);
  if (registry_.active(channel)) {
    done("");
    return;
  }
  // Not active yet: its LISTEN is on its way, or goes out when the connection is (back) up.
  waiters_[channel].emplace_back(id, std::move(done));
  if (stopped_) {
    fail_all_waiters("pgcohered is shutting down");
    return;
  }
  if (fresh && connected_) send_listen({channel});
  if (!running_) {
    running_ = true;
    asio::co_spawn(pooler_.io(), [this]() { return run(); }, asio::detached);
  }
}

void NotifyHub::unlisten(ClientConn& client, const std::string& channel) {
  Id id = static_cast<Id>(client.id());
  if (registry_.unsubscribe(id, channel) && connected_) {
    send_query("UNLISTEN " + notify::quote_identifier(channel), {});
  }
  if (registry_.channels_of(id).empty()) clients_.erase(id);
}

void NotifyHub::unlisten_all(ClientConn& client) {
  Id id = static_cast<Id>(client.id());
  for (auto& [channel, list] : waiters_)
    std::erase_if(list, [id](const auto& w) { return w.first == id; });
  std::erase_if(waiters_, [](const auto& kv) { return kv.second.empty(); });
  for (const auto& channel : registry_.unsubscribe_all(id))
    if (connected_) send_query("UNLISTEN " + notify::quote_identifier(channel), {});
  clients_.erase(id);
}

void NotifyHub::send_listen(const std::vector<std::string>& channels) {
  if (channels.empty()) return;
  InFlight what;
  std::string sql;
  for (const auto& channel : channels) {
    sql += (sql.empty() ? "" : ";") + std::string("LISTEN ") + notify::quote_identifier(channel);
    what.listens.emplace_back(channel, registry_.listen_sent(channel));
  }
  send_query(sql, std::move(what));
}

void NotifyHub::send_query(const std::string& sql, InFlight what) {
  protocol::encode::query(out_, sql);
  in_flight_.push_back(std::move(what));
  if (!writing_) {
    writing_ = true;
    asio::co_spawn(pooler_.io(), [this]() { return write_loop(); }, asio::detached);
  }
}

awaitable<void> NotifyHub::write_loop() {
  std::string buf;
  while (!out_.empty() && connected_) {
    buf.swap(out_);
    out_.clear();
    boost::system::error_code ec;
    co_await asio::async_write(socket_, asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
    buf.clear();
    if (ec) {
      close_socket();  // the read loop ends and reconnects
      break;
    }
  }
  writing_ = false;
}

void NotifyHub::finish_waiters(const std::string& channel, const std::string& error) {
  auto it = waiters_.find(channel);
  if (it == waiters_.end()) return;
  auto list = std::move(it->second);
  waiters_.erase(it);
  for (auto& [id, done] : list) {
    if (!error.empty()) {
      // The client's LISTEN did not happen: it does not listen.
      if (registry_.unsubscribe(id, channel) && connected_)
        send_query("UNLISTEN " + notify::quote_identifier(channel), {});
      if (registry_.channels_of(id).empty()) clients_.erase(id);
    }
    done(error);
  }
}

void NotifyHub::fail_all_waiters(const std::string& error) {
  std::vector<std::string> channels;
  for (auto& [channel, list] : waiters_) channels.push_back(channel);
  for (auto& channel : channels) finish_waiters(channel, error);
}

void NotifyHub::on_ready() {
  if (in_flight_.empty()) return;
  InFlight done = std::move(in_flight_.front());
  in_flight_.pop_front();
  for (auto& [channel, gen] : done.listens) {
    if (!done.error.empty()) {
      finish_waiters(channel, "LISTEN failed: " + done.error);
    } else if (registry_.listen_acknowledged(channel, gen)) {
      finish_waiters(channel, "");
    }
  }
}

void NotifyHub::dispatch(int32_t pid, std::string_view channel, std::string_view payload) {
  ++notifications_;
  const auto* ids = registry_.listeners(std::string(channel));
  if (!ids) return;  // UNLISTENed while the notification was on its way
  std::string message;
  protocol::encode::notification_response(message, pid, channel, payload);
  std::vector<ClientConn*> overflowed;
  for (Id id : *ids) {
    auto it = clients_.find(id);
    if (it == clients_.end()) continue;
    if (!it->second->deliver_notification(message)) overflowed.push_back(it->second);
  }
  // After the loop: failing a client must not change the set being walked.
  for (ClientConn* c : overflowed) {
    ++overflows_;
    c->notifications_overflowed();
  }
}

awaitable<void> NotifyHub::run() {
  double delay = kRetryMin;
  while (!stopped_ && !registry_.empty()) {
    std::string error = co_await connect_and_login();
    if (error.empty()) {
      connected_ = true;
      delay = kRetryMin;
      PGC_LOG_INFO << "LISTEN connection for database " << database_ << " is up (backend " << backend_pid_
                   << "), listening on " << registry_.channel_count() << " channel(s)";
      send_listen(registry_.channels());
      error = co_await read_loop();
      connected_ = false;
      if (!stopped_) {
        PGC_LOG_WARN << "LISTEN connection for database " << database_ << " lost (" << error
                     << "): notifications sent until it is back are lost";
      }
    } else if (!stopped_) {
      PGC_LOG_WARN << "LISTEN connection for database " << database_ << " failed: " << error;
      // Clients waiting for their LISTEN get the error rather than wait for ever.
      fail_all_waiters("could not connect the LISTEN connection: " + error);
    }
    close_socket();
    registry_.connection_lost();
    in_flight_.clear();
    out_.clear();
    backend_pid_ = 0;
    if (stopped_ || registry_.empty()) break;
    timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(delay)));
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(use_awaitable, ec));
    delay = std::min(delay * 2, kRetryMax);
  }
  running_ = false;
  if (stopped_) fail_all_waiters("pgcohered is shutting down");
}

awaitable<std::string> NotifyHub::connect_and_login() {
  auto& t = entry_.target();
  auto& d = pooler_.settings();
  boost::system::error_code ec;
  socket_ = generic_stream::socket(pooler_.io());
  bool unix_socket = !t.host.empty() && t.host[0] == '/';
  generic_stream::endpoint endpoint;
  if (unix_socket) {
    endpoint = generic_stream::endpoint(
        asio::local::stream_protocol::endpoint(t.host + "/.s.PGSQL." + std::to_string(t.port)));
  } else {
    asio::ip::tcp::resolver resolver(pooler_.io());
    auto results = co_await resolver.async_resolve(t.host, std::to_string(t.port), asio::redirect_error(use_awaitable, ec));
    if (ec || results.empty()) co_return "could not resolve " + t.host + ": " + ec.message();
    endpoint = generic_stream::endpoint(results.begin()->endpoint());
  }
  socket_.open(endpoint.protocol(), ec);
  if (ec) co_return ec.message();
  // server_connect_timeout bounds the login as it does for pool connections.
  auto armed = std::make_shared<bool>(true);
  if (d.server_connect_timeout > 0) {
    timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(d.server_connect_timeout)));
    timer_.async_wait([this, armed](const boost::system::error_code& e) {
      if (!e && *armed) close_socket();
    });
  }
  struct Disarm {
    asio::steady_timer& t;
    std::shared_ptr<bool> armed;
    ~Disarm() {
      *armed = false;
      t.cancel();
    }
  } disarm{timer_, armed};
  co_await socket_.async_connect(endpoint, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return (ec == asio::error::operation_aborted ? "server_connect_timeout" : ec.message());
  if (!unix_socket) net::apply_tcp_options(socket_.native_handle(), pooler_.tcp_options());
  std::string out;
  protocol::Params params{{"user", entry_.server_user()}, {"database", t.dbname}};
  for (auto& [k, v] : t.startup)
    if (k != "application_name") params.emplace_back(k, v);
  // Operators find it in pg_stat_activity by this name.
  params.emplace_back("application_name", "pgcohered listen");
  protocol::encode::startup_message(out, params);
  co_await asio::async_write(socket_, asio::buffer(out), asio::redirect_error(use_awaitable, ec));
  if (ec) co_return ec.message();

  protocol::FrameDecoder decoder(protocol::FrameDecoder::Side::backend);
  std::string in;
  std::optional<auth::ServerAuth> auth;
  char buf[8192];
  for (;;) {
    auto f = decoder.next(in);
    if (f.kind == protocol::Frame::Kind::error) co_return "protocol error: " + f.error;
    if (f.kind != protocol::Frame::Kind::message) {
      size_t n = co_await socket_.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
      if (ec) co_return (ec == asio::error::operation_aborted ? "server_connect_timeout" : ec.message());
      in.append(buf, n);
      continue;
    }
    std::string reply;
    switch (f.type) {
      case 'R': {
        auto a = protocol::parse_authentication(f.body);
        if (!a) co_return a.error();
        if (!auth) auth.emplace(entry_.server_credentials(pooler_.users()));
        auto step = auth->on_request(a->code, a->data);
        if (!step.error.empty()) co_return step.error;
        if (step.send) protocol::encode::password_message(reply, *step.send, false);
        break;
      }
      case 'K': {
        auto k = protocol::parse_backend_key_data(f.body);
        if (k) backend_pid_ = k->pid;
        break;
      }
      case 'E': {
        auto e = protocol::parse_error_fields(f.body);
        co_return e ? std::string(e->get('M')) : "server error";
      }
      case 'Z':
        co_return "";  // nothing can follow ReadyForQuery before our first query
      default:
        break;  // ParameterStatus, notices
    }
    in.erase(0, f.consumed);
    if (!reply.empty()) {
      co_await asio::async_write(socket_, asio::buffer(reply), asio::redirect_error(use_awaitable, ec));
      if (ec) co_return ec.message();
    }
  }
}

awaitable<std::string> NotifyHub::read_loop() {
  protocol::FrameDecoder decoder(protocol::FrameDecoder::Side::backend);
  std::string in;
  std::vector<char> buf(64 * 1024);
  for (;;) {
    boost::system::error_code ec;
    size_t n = co_await socket_.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
    if (ec) co_return ec == asio::error::eof ? "server closed the connection" : ec.message();
    in.append(buf.data(), n);
    std::size_t used = 0;
    for (;;) {
      auto f = decoder.next(std::string_view(in).substr(used));
      if (f.kind == protocol::Frame::Kind::need_more) break;
      if (f.kind != protocol::Frame::Kind::message) co_return "protocol error: " + f.error;
      switch (f.type) {
        case 'A': {
          auto a = protocol::parse_notification_response(f.body);
          if (!a) co_return a.error();
          dispatch(a->pid, a->channel, a->payload);
          break;
        }
        case 'E': {
          auto e = protocol::parse_error_fields(f.body);
          std::string m = e ? std::string(e->get('M')) : "server error";
          if (e && e->get('S') == "FATAL") co_return m;
          if (!in_flight_.empty()) in_flight_.front().error = m;
          PGC_LOG_WARN << "LISTEN connection for database " << database_ << ": " << m;
          break;
        }
        case 'Z':
          on_ready();
          break;
        default:
          break;  // CommandComplete, ParameterStatus, notices
      }
      used += f.consumed;
    }
    in.erase(0, used);
    if (stopped_) co_return "stopped";
  }
}

}  // namespace pgcohere::pooler

// A client's LISTEN/NOTIFY in transaction pooling (see notify_hub.h): its LISTEN and
// UNLISTEN answered by the pooler, its notifications written between transactions.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "pooler/client_conn.h"
#include "pooler/notify_hub.h"
#include "pooler/pooler.h"
#include "pooler/server_conn.h"
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

namespace {
// What PostgreSQL answers a statement inside a failed transaction block.
void aborted_transaction_error(std::string& out) {
  protocol::encode::error_response(out, "ERROR", "25P02",
                                   "current transaction is aborted, commands ignored until end of transaction block");
}
}  // namespace

awaitable<ClientConn::ListenOutcome> ClientConn::run_listen_command(const notify::ListenCommand& cmd,
                                                                    std::string& out) {
  auto self = shared_from_this();
  if (cmd.kind == notify::ListenCommand::Kind::listen) {
    auto& listening = this->listening();
    if (!listening.hub) listening.hub = &pooler_.notify_hub(*entry_);
    auto result = std::make_shared<std::optional<std::string>>();
    listening.hub->listen(*this, cmd.channel, [result, self](std::string error) {
      *result = std::move(error);
      self->wakeup_.notify();
    });
    while (!*result) {
      co_await wakeup_.async_wait(use_awaitable);
      if (closed_ || dying_) co_return ListenOutcome::gone;
    }
    if (!(*result)->empty()) {
      protocol::encode::error_response(out, "ERROR", "08006", **result);
      co_return ListenOutcome::failed;
    }
  } else if (auto hub = notify_hub(); hub && cmd.kind == notify::ListenCommand::Kind::unlisten) {
    hub->unlisten(*this, cmd.channel);
  } else if (hub) {
    hub->unlisten_all(*this);
  }
  protocol::encode::command_complete(out, notify::command_tag(cmd));
  co_return ListenOutcome::done;
}

void ClientConn::apply_unlistens(const notify::ListenRequest& request) {
  auto hub = notify_hub();
  if (!hub) return;
  for (const auto& cmd : request.commands) {
    if (cmd.kind == notify::ListenCommand::Kind::unlisten) hub->unlisten(*this, cmd.channel);
    if (cmd.kind == notify::ListenCommand::Kind::unlisten_all) hub->unlisten_all(*this);
  }
}

awaitable<bool> ClientConn::answer_listen(const notify::ListenRequest& request) {
  auto self = shared_from_this();
  // Inside a transaction block the answer keeps its status; the subscription itself takes
  // effect at once (docs/pooler.md says why).
  char status = server_ ? server_->session().tx_status() : 'I';
  std::string out;
  if (request.mixed) {
    protocol::encode::error_response(
        out, "ERROR", "0A000",
        "LISTEN must be sent as its own query in transaction pooling mode (not with other statements)");
  } else if (status == 'E') {
    aborted_transaction_error(out);
  } else {
    for (const auto& cmd : request.commands) {
      auto outcome = co_await run_listen_command(cmd, out);
      if (outcome == ListenOutcome::gone) co_return false;
      if (outcome == ListenOutcome::failed) break;
    }
  }
  protocol::encode::ready_for_query(out, status);
  co_await write_gated(out);
  co_return !(closed_ || dying_);
}

bool ClientConn::starts_listen_batch(const protocol::Frame& f) const {
  if (f.type == 'P') {
    auto p = protocol::parse_parse(f.body);
    if (!p) return false;
    auto r = notify::recognize(p.value().query);
    return r && !r->mixed && r->commands.size() == 1;
  }
  if (f.type == 'B' && listening_ && !listening_->statements.empty()) {
    auto b = protocol::parse_bind_head(f.body);
    return b && listening_->statements.count(std::string(b.value().statement));
  }
  return false;
}

void ClientConn::forget_listen_statement(const protocol::Frame& f) {
  if (!listening_ || listening_->statements.empty()) return;
  std::string_view name;
  if (f.type == 'P') {
    auto p = protocol::parse_parse(f.body);
    if (!p) return;
    name = p.value().name;
  } else if (f.type == 'C') {
    auto t = protocol::parse_target(f.body);
    if (!t || t.value().kind != 'S') return;
    name = t.value().name;
  } else {
    return;
  }
  listening_->statements.erase(std::string(name));
}

// The extended protocol (asyncpg, JDBC): Parse of a LISTEN/UNLISTEN, or Bind of such a
// statement, and what follows up to Sync (or Flush) answered here when every message of
// it concerns such statements; anything else goes to a server as usual.
awaitable<std::size_t> ClientConn::answer_listen_batch(std::string_view data) {
  struct Step {
    char type;
    std::string name;   // statement (P, D 'S', C 'S') or portal (B, D 'P', E, C 'P')
    std::string other;  // B: the statement
    char kind = 0;      // D and C: 'S' or 'P'
  };
  std::map<std::string, notify::ListenCommand> statements = listening().statements, portals;
  std::vector<Step> steps;
  protocol::FrameDecoder decoder(protocol::FrameDecoder::Side::frontend,
                                 static_cast<uint32_t>(std::max(1024, pooler_.settings().max_packet_size)));
  std::size_t pos = 0;
  for (bool end = false; !end;) {
    auto f = decoder.next(data.substr(pos));
    if (f.kind == protocol::Frame::Kind::need_more) co_return kListenNeedMore;
    if (f.kind != protocol::Frame::Kind::message) co_return 0;
    Step step{f.type, {}, {}, 0};
    switch (f.type) {
      case 'P': {
        auto p = protocol::parse_parse(f.body);
        if (!p) co_return 0;
        auto r = notify::recognize(p.value().query);
        if (!r || r->mixed || r->commands.size() != 1) co_return 0;
        step.name = p.value().name;
        statements[step.name] = r->commands[0];
        break;
      }
      case 'B': {
        auto b = protocol::parse_bind_head(f.body);
        if (!b || !statements.count(std::string(b.value().statement))) co_return 0;
        step.name = b.value().portal;
        step.other = b.value().statement;
        portals[step.name] = statements[step.other];
        break;
      }
      case 'D':
      case 'C': {
        auto t = protocol::parse_target(f.body);
        if (!t) co_return 0;
        step.kind = t.value().kind;
        step.name = t.value().name;
        if (!(step.kind == 'S' ? statements : portals).count(step.name)) co_return 0;
        break;
      }
      case 'E': {
        auto e = protocol::parse_execute(f.body);
        if (!e || !portals.count(std::string(e.value().portal))) co_return 0;
        step.name = e.value().portal;
        break;
      }
      case 'S':
      case 'H':
        end = true;
        break;
      default:
        co_return 0;
    }
    steps.push_back(std::move(step));
    pos += f.consumed;
  }

  char status = server_ ? server_->session().tx_status() : 'I';
  bool failed = false;  // after an error, messages up to Sync are ignored, as PostgreSQL does
  std::string out;
  for (const Step& step : steps) {
    if (failed && step.type != 'S') continue;
    if (status == 'E' && step.type != 'S' && step.type != 'H') {
      aborted_transaction_error(out);
      failed = true;
      continue;
    }
    switch (step.type) {
      case 'P':
        listening_->statements[step.name] = statements[step.name];
        protocol::encode::parse_complete(out);
        break;
      case 'B':
        listening_->portals[step.name] = listening_->statements[step.other];
        protocol::encode::bind_complete(out);
        break;
      case 'D':
        if (step.kind == 'S') protocol::encode::parameter_description(out, {});
        protocol::encode::no_data(out);
        break;
      case 'C':
        (step.kind == 'S' ? listening_->statements : listening_->portals).erase(step.name);
        protocol::encode::close_complete(out);
        break;
      case 'E': {
        auto outcome = co_await run_listen_command(listening_->portals[step.name], out);
        if (outcome == ListenOutcome::gone) co_return kListenGone;
        if (outcome == ListenOutcome::failed) failed = true;
        break;
      }
      case 'S':
        listening_->portals.clear();  // the implicit transaction ends; so do its portals
        failed = false;
        protocol::encode::ready_for_query(out, status);
        break;
      default:
        break;  // Flush: what is answered so far goes out below
    }
  }
  co_await write_gated(out);
  if (closed_ || dying_) co_return kListenGone;
  co_return pos;
}

awaitable<void> ClientConn::wait_for_server_answers() {
  // Rare (a LISTEN pipelined behind other requests): poll rather than give ServerConn a
  // hook for it.
  asio::steady_timer timer(pooler_.io());
  while (server_ && server_->session().requests_in_flight() && !closed_ && !dying_) {
    timer.expires_after(std::chrono::milliseconds(1));
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

bool ClientConn::deliver_notification(std::string_view message) {
  if (closed_ || dying_) return true;  // going away: nothing to keep
  if (!listening().pending.push(message)) return false;
  if (!server_) start_notification_flush();
  return true;
}

void ClientConn::notifications_overflowed() {
  PGC_LOG_WARN << "client " << peer_ << " db=" << database_ << " user=" << user_ << ": more than "
               << notify::kMaxPendingNotificationBytes << " bytes of notifications wait for it; disconnecting it";
  if (write_gate_.busy()) {
    // A write to it is under way, most likely stuck on a full socket: an error message would
    // wait behind it for ever. Closing ends that write too.
    close();
    return;
  }
  fail("too many notifications pending for this client (it does not read them, or stays in one transaction)");
}

void ClientConn::start_notification_flush() {
  if (listening().flushing || closed_ || dying_) return;
  listening_->flushing = true;
  asio::co_spawn(pooler_.io(), [self = shared_from_this()]() { return self->flush_notifications(); }, asio::detached);
}

awaitable<void> ClientConn::flush_notifications() {
  if (!write_gate_.try_enter()) co_await write_gate_.async_enter(use_awaitable);
  std::string out;
  // A server linked meanwhile forwards them at its ReadyForQuery 'I' instead; a message
  // cut in the middle (mid_message_) cannot be followed by ours.
  while (!server_ && !closed_ && !dying_ && !mid_message_ && has_notifications()) {
    out.clear();
    take_notifications(out);
    boost::system::error_code ec;
    co_await asio::async_write(socket_, asio::buffer(out), asio::redirect_error(use_awaitable, ec));
    if (ec) break;  // the client's own loop notices the broken socket
  }
  write_gate_.leave();
  listening_->flushing = false;
}

}  // namespace pgcohere::pooler

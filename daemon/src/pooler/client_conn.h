// One client connection: startup and login, then its messages are translated and
// written to a server connection borrowed from its pool (waiting for one when none is free).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <chrono>
#include <map>
#include <cstdint>
#include <memory>
#include <string>

#include "net/buffer.h"
#include "net/stream.h"
#include "net/wakeup.h"
#include "net/write_gate.h"
#include "cache/pending_fill.h"
#include "notify/channel_registry.h"
#include "notify/listen_statement.h"
#include "pooler/client_list.h"
#include "protocol/frame.h"
#include "protocol/messages.h"
#include "session/client_session.h"

namespace pgcohere::pooler {

class Pooler;
class ServerConn;
class PoolEntry;
class NotifyHub;

class ClientConn : public std::enable_shared_from_this<ClientConn>,
                   public AllClientsHook,     // the listener's registry of every client
                   public LoginClientsHook,   // the listener's, until logged in
                   public PoolClientsHook,    // its pool's, once logged in
                   public AwakeClientsHook {  // its pool's, while not parked
 public:
  using Clock = std::chrono::steady_clock;
  // unix_socket: accepted on the Unix socket (no TLS there, none required).
  ClientConn(Pooler& pooler, net::Stream::Socket socket, bool unix_socket);
  ~ClientConn();
  ClientConn(const ClientConn&) = delete;
  ClientConn& operator=(const ClientConn&) = delete;

  void start();
  void close();

  // The pool's Waiter interface.
  void grant(std::shared_ptr<ServerConn> server);
  void fail(const std::string& why);

  // A server connection's answer, forwarded while holding the client's write gate (a
  // timeout's error or another server connection's answer waits for it). `mid_message`:
  // the bytes forwarded so far end inside a message (a DataRow streamed in pieces), so
  // nothing of ours may be written after them, the stream can only be cut.
  boost::asio::awaitable<boost::system::error_code> forward(std::string_view out, bool mid_message);
  bool unix_socket() const { return unix_socket_; }
  // SHOW CLIENTS' tls column ("" in plain text).
  std::string tls_description() { return socket_.tls_description(); }
  session::ClientSession& session() { return session_; }
  bool writing_to_server() const { return writing_; }
  void set_server(std::shared_ptr<ServerConn> s) {
    server_ = std::move(s);
    if (!server_ && has_notifications()) start_notification_flush();  // between transactions now
  }
  const std::shared_ptr<ServerConn>& server() const { return server_; }
  uint64_t cancel_id() const { return (uint64_t(uint32_t(cancel_pid_)) << 32) | uint32_t(cancel_key_); }
  PoolEntry* entry() const { return entry_; }
  const std::string& user() const { return user_; }
  const std::string& database() const { return database_; }
  Clock::time_point connected_at() const { return connected_at_; }
  Clock::time_point wait_started() const { return wait_started_; }
  bool waiting() const { return waiting_; }
  std::string peer() const { return peer_; }
  std::chrono::system_clock::time_point connect_wall() const { return connect_wall_; }
  int64_t id() const { return id_; }
  bool admin() const { return admin_; }
  // Authenticated (client_login_timeout, checked by the janitor, no longer applies).
  bool logged_in() const { return registered_; }
  Clock::time_point last_activity() const { return last_activity_; }
  // Closes the connection with an error (a timeout the janitor found), PgBouncer's wording.
  void expire(const std::string& why) { fail(why); }
  // The query cache's capture of the reply to a request this client leads (ServerConn feeds
  // it every forwarded message until the request's ReadyForQuery).
  bool capturing() const { return pending_fill_ != nullptr; }
  void capture(char type, std::string_view message) {
    if (pending_fill_->add(type, message)) end_capture();
  }
  void capture_fragment() {
    if (pending_fill_->add_fragment()) end_capture();
  }
  // pgcohere.published as the server reported it after this client's last commit that
  // invalidated something ("<epoch> <pos>"): the cache answers it only once that is purged.
  void note_published(std::string_view value) { published_.assign(value); }
  // LISTEN/NOTIFY in transaction pooling (notify_hub.h, client_listen.cpp). A notification
  // for this client: written at once when it is between transactions, else kept for its
  // next ReadyForQuery 'I'; false when that would pass the bound of its pending ones.
  bool deliver_notification(std::string_view message);
  void notifications_overflowed();
  // ServerConn, before it forwards a ReadyForQuery 'I': what waited for the transaction's end.
  bool has_notifications() const { return listening_ && !listening_->pending.empty(); }
  void take_notifications(std::string& out) {
    if (listening_) listening_->pending.move_to(out);
  }
  // A CancelRequest named this client while it waits in the queue: its request fails with
  // "canceling statement due to user request" and it stays connected (pgbouncer#1314).
  void cancel_wait();
  // Queued for a while (the janitor calls it each tick for every waiter): from now on a
  // client that goes away (EOF, reset, Terminate) is closed at once, so it leaves the queue
  // and SHOW CLIENTS without waiting to be served. Short waits, the common case under
  // load, cost nothing (no epoll re-arm).
  void watch_while_waiting();
  // The janitor found the client quiet, with nothing linked or queued: if it waits for its
  // next request, the wait is cut and the client parks (no coroutine while idle).
  void park_if_quiet();
  // query_wait_timeout passed (the pooler's janitor checks it).
  void wait_timed_out() {
    timed_out_ = true;
    wakeup_.notify();
  }

 private:
  // The session's coroutine: login (unless `woken`) and serve(), then finish() unless it parked.
  boost::asio::awaitable<void> run(bool woken);
  // Waits for the client's next bytes with no coroutine; unpark() then runs run(true).
  void park();
  void unpark(const boost::system::error_code& ec);
  struct ParkedWait;  // park()'s handler
  // The session is over: leaves its pool, its server connection, its LISTENs; closes.
  void finish();
  boost::asio::awaitable<bool> login();
  // The answer to an SSLRequest, and the TLS handshake after 'S'. False: close.
  boost::asio::awaitable<bool> answer_ssl_request();
  boost::asio::awaitable<bool> authenticate();
  // Logged in: stops the login timer and lifts the pre-login packet limit.
  void finish_login();
  // After try_link() found no idle connection: waits in the pool's queue for one.
  boost::asio::awaitable<bool> acquire();
  bool try_link();
  void watch_while_waiting(std::uint64_t generation);
  // The error (and ReadyForQuery, or skipping to Sync) for a canceled queued request.
  boost::asio::awaitable<void> answer_canceled(const protocol::Frame& f);
  void sync_parameters(std::string& out);
  // Runs the client's requests. True: it parked (between messages, nothing pending); false:
  // the session is over. `woken`: the socket is readable (a parked wait ended).
  boost::asio::awaitable<bool> serve(bool woken);
  // Reads what the client sent into in_ (at least one byte; throws on EOF/errors). With
  // `may_park`, 0 when park_if_quiet() cut its wait for data.
  boost::asio::awaitable<size_t> read_more(bool may_park = false);
  bool parkable_ = false;        // waiting in serve() for the next request
  bool park_requested_ = false;  // park_if_quiet() canceled that wait
  // Reads what is there without waiting for it: 0 when nothing was (throws on EOF/errors).
  boost::asio::awaitable<size_t> read_now();
  boost::asio::awaitable<void> send_fatal(std::string_view sqlstate, std::string_view message);
  // A failed login: logged (rate-limited), then, after auth_failure_delay, FATAL with this
  // SQLSTATE and message; `reason` is for the log only.
  boost::asio::awaitable<void> refuse_login(std::string_view sqlstate, std::string_view message,
                                            std::string_view reason);
  // Every write to the client's socket holds its write gate (net/write_gate.h), from the
  // first byte of the login on: write_gated() (throws on a write error), forward() and
  // write_last_error() are the only writers (tests/test_pool_races.py checks it).
  boost::asio::awaitable<void> write_gated(std::string_view out);
  // fail()'s second half, run while holding the write gate.
  void write_last_error(const std::string& why);
  void release_if_idle();
  // The query cache: answers the request at the start of `data` from Redis when it can.
  // Returns the bytes answered (0: the normal path must run it, maybe capturing its reply).
  boost::asio::awaitable<std::size_t> try_cache(std::string_view data);
  // SET/RESET pgcohere.cache_bypass, answered by the pooler itself: bytes consumed or 0.
  boost::asio::awaitable<std::size_t> try_session_switch(std::string_view data);
  boost::asio::awaitable<void> replay(const std::string& reply);
  // Ends the server's open batch of Parse/Describe/Flush with a Sync whose ReadyForQuery
  // the client never sees, then waits for its answers and gives the server back.
  boost::asio::awaitable<void> end_prepare_batch();
  // A Query or Parse (its text `sql`) that may change a setting the cache key holds and
  // PostgreSQL does not report: the cache stops answering this client.
  void note_session_change(std::string_view sql);
  // The test before try_session_switch/try_cache, with no allocation and no coroutine: whether
  // the batch that starts with `f` (statement text `sql`, if any) may be answered by either.
  bool may_be_answered(const protocol::Frame& f, std::string_view sql);
  // Named statements are the pooler's own (and so known to the cache) in transaction pooling.
  bool named_statements_cached() const;
  void end_capture() {
    auto fill = std::move(pending_fill_);
    fill->end();
  }

  Pooler& pooler_;
  net::Stream socket_;  // TCP or Unix socket, maybe inside TLS
  bool unix_socket_;
  net::Wakeup wakeup_;
  net::WriteGate write_gate_;
  bool mid_message_ = false;
  session::ClientSession session_;
  protocol::FrameDecoder decoder_;
  net::ReadBuffer in_{std::vector<char>{}};  // a pkt_buf block only while bytes are pending
  std::shared_ptr<ServerConn> server_;
  PoolEntry* entry_ = nullptr;
  std::string user_, database_, peer_;
  int32_t cancel_pid_ = 0, cancel_key_ = 0;
  bool registered_ = false;
  bool writing_ = false;
  bool waiting_ = false;
  bool timed_out_ = false;
  bool canceled_ = false;          // cancel_wait() ended the wait
  bool skipping_to_sync_ = false;  // a canceled extended-protocol batch: drop up to its Sync
  std::uint64_t wait_generation_ = 0;
  bool watched_ = false;  // watch_while_waiting() armed for this wait
  bool closed_ = false;
  bool dying_ = false;  // fail() is writing a last error, then closes
  std::string fail_reason_;
  Clock::time_point connected_at_, wait_started_, last_activity_ = Clock::now();
  std::chrono::system_clock::time_point connect_wall_ = std::chrono::system_clock::now();
  int64_t id_;
  bool admin_ = false;
  bool cache_bypass_ = false;  // SET pgcohere.cache_bypass = on
  bool cache_blind_ = false;   // the session may have changed a setting the key holds (session_change.h)
  std::string published_;
  std::unique_ptr<cache::PendingFill> pending_fill_;
  // LISTEN / UNLISTEN answered by the pooler (client_listen.cpp): false when the client is gone.
  boost::asio::awaitable<bool> answer_listen(const notify::ListenRequest& request);
  void apply_unlistens(const notify::ListenRequest& request);
  enum class ListenOutcome { done, failed, gone };
  boost::asio::awaitable<ListenOutcome> run_listen_command(const notify::ListenCommand& cmd, std::string& out);
  // The extended protocol's LISTEN: a Parse of one, or a Bind of such a statement, starts a
  // batch answer_listen_batch() may answer: the bytes it answered, 0 (not such a batch:
  // the normal path runs it), or one of these.
  bool starts_listen_batch(const protocol::Frame& f) const;
  void forget_listen_statement(const protocol::Frame& f);  // a Parse or Close of that name
  static constexpr std::size_t kListenNeedMore = static_cast<std::size_t>(-1);
  static constexpr std::size_t kListenGone = static_cast<std::size_t>(-2);
  boost::asio::awaitable<std::size_t> answer_listen_batch(std::string_view data);
  // Until the linked server connection has answered everything sent to it.
  boost::asio::awaitable<void> wait_for_server_answers();
  void start_notification_flush();
  boost::asio::awaitable<void> flush_notifications();
  // What LISTEN brings, allocated by the first one: most clients never LISTEN, and the
  // memory of an idle client is multiplied by 10,000 of them.
  struct Listening {
    std::map<std::string, notify::ListenCommand> statements, portals;  // extended-protocol LISTENs
    NotifyHub* hub = nullptr;
    notify::PendingNotifications pending{notify::kMaxPendingNotificationBytes};
    bool flushing = false;
  };
  std::unique_ptr<Listening> listening_;
  Listening& listening() {
    if (!listening_) listening_ = std::make_unique<Listening>();
    return *listening_;
  }
  NotifyHub* notify_hub() const { return listening_ ? listening_->hub : nullptr; }
  // The admin console session (pooler/admin.cpp, with the rest of the console's backend).
  boost::asio::awaitable<void> serve_admin(bool admin_user);
};

}  // namespace pgcohere::pooler

// hiredis async on Asio: the event hooks wait on the socket with a stream_descriptor and call
// redisAsyncHandleRead/Write; replies are copied and their callbacks posted.
#include "redis/async_client.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <stdexcept>

#include "util/log.h"

namespace pgcohere::redis {

namespace asio = boost::asio;

// Lives as long as hiredis holds the context, and as long as a wait is pending.
//
// System calls per command matter here (one command per invalidation NOTIFY at low load):
// - a command on a connected link is written without waiting for the socket to become
//   writable (it almost always is): by the owner's uncork(), or in a handler posted once
//   for all the commands of the current handler. Only the connect and a write that filled
//   the socket buffer wait for writability;
// - such a wait leaves EPOLLOUT in Asio's epoll registration, and every later re-arm of the
//   read wait (an EPOLL_CTL_MOD) would report the writable socket again, one more
//   epoll_wait per reply: arm_read() registers the socket afresh once no wait is pending;
// - the replies of one read complete right after hiredis returns, not one post each.
struct AsyncClient::Events : std::enable_shared_from_this<Events> {
  Events(asio::io_context& io, redisAsyncContext* c) : sd(io, c->c.fd), ac(c) {}
  asio::posix::stream_descriptor sd;
  redisAsyncContext* ac;
  bool want_read = false, want_write = false;
  bool read_pending = false, write_pending = false;
  bool flush_posted = false;
  bool in_write = false;         // inside redisAsyncHandleWrite (it asks for writes itself)
  bool out_registered = false;   // sd has waited for writability
  std::shared_ptr<Events> self;  // dropped by cleanup()

  AsyncClient* client() const { return ac ? static_cast<AsyncClient*>(ac->data) : nullptr; }
  bool connected() const { return ac && (ac->c.flags & REDIS_CONNECTED); }

  void reregister() {  // no wait may be pending on sd
    int fd = sd.native_handle();
    sd.release();
    boost::system::error_code ec;
    sd.assign(fd, ec);  // registered for reads only, as a new descriptor is
    out_registered = false;
    if (ec) {
      PGC_LOG_WARN << "redis: cannot register the socket again: " << ec.message();
    }
  }
  void arm_read() {
    if (read_pending || !ac) return;
    if (out_registered && !write_pending) reregister();
    read_pending = true;
    sd.async_wait(asio::posix::stream_descriptor::wait_read,
                  [s = shared_from_this()](boost::system::error_code ec) {
                    s->read_pending = false;
                    if (ec || !s->ac || !s->want_read) return;
                    // The client outlives its context (its destructor frees it), and hiredis
                    // runs no code of ours here but on_reply/on_disconnect.
                    AsyncClient* client = s->client();
                    std::vector<Completion> ready;
                    client->collected_ = &ready;
                    redisAsyncHandleRead(s->ac);  // may run cleanup() and null ac
                    client->collected_ = nullptr;
                    if (s->ac && s->want_read) s->arm_read();
                    for (auto& c : ready) c.done(std::move(c.reply));  // may destroy the client
                  });
  }
  void arm_write() {
    if (write_pending || !ac) return;
    write_pending = true;
    out_registered = true;
    sd.async_wait(asio::posix::stream_descriptor::wait_write,
                  [s = shared_from_this()](boost::system::error_code ec) {
                    s->write_pending = false;
                    if (ec || !s->ac || !s->want_write) return;
                    s->write_now();
                  });
  }
  // The caller keeps *this alive (a shared_ptr) across the call.
  void write_now() {
    in_write = true;
    redisAsyncHandleWrite(ac);  // completes the connect first if needed; may null ac
    in_write = false;
    if (ac && want_write) arm_write();  // still connecting, or the socket buffer is full
  }
  void schedule_flush() {
    if (flush_posted || write_pending) return;
    flush_posted = true;
    asio::post(sd.get_executor(), [s = shared_from_this()] {
      s->flush_posted = false;
      if (s->ac && s->want_write && !s->write_pending) s->write_now();
    });
  }
  static Events* of(void* p) { return static_cast<Events*>(p); }
  static void add_read(void* p) { of(p)->want_read = true; of(p)->arm_read(); }
  static void del_read(void* p) { of(p)->want_read = false; }
  static void add_write(void* p) {
    Events* e = of(p);
    e->want_write = true;
    if (e->in_write) return;  // write_now() looks at want_write when hiredis returns
    if (!e->connected()) {
      e->arm_write();  // the connect completes when the socket becomes writable
      return;
    }
    if (AsyncClient* c = e->client(); c && c->corked_ > 0) return;  // uncork() writes
    e->schedule_flush();
  }
  static void del_write(void* p) { of(p)->want_write = false; }
  static void cleanup(void* p) {
    Events* e = of(p);
    e->ac = nullptr;
    e->want_read = e->want_write = false;
    boost::system::error_code ignored;
    e->sd.cancel(ignored);
    e->sd.release();  // hiredis closes the fd itself
    e->self.reset();  // may destroy *e once no wait holds it
  }
};

namespace {
struct Pending {
  asio::io_context& io;
  AsyncClient::Callback done;
  std::weak_ptr<AsyncClient> client;  // expired while the client is being destroyed
};
}  // namespace

Reply copy_reply(const void* raw) {
  const auto* r = static_cast<const redisReply*>(raw);
  Reply out;
  if (!r) return Reply::make_error("connection lost");
  switch (r->type) {
    case REDIS_REPLY_STRING: out.type = Reply::Type::string; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_STATUS: out.type = Reply::Type::status; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_ERROR: out.type = Reply::Type::error; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_INTEGER: out.type = Reply::Type::integer; out.integer = r->integer; break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::array;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(copy_reply(r->element[i]));
      break;
    default: out.type = Reply::Type::nil;
  }
  return out;
}

AsyncClient::AsyncClient(asio::io_context& io, std::string host, int port, int db, std::string name)
    : io_(io), host_(std::move(host)), port_(port), db_(db), name_(std::move(name)),
      reconnect_timer_(io),
      watchdog_(io) {}

void AsyncClient::set_timeouts(std::chrono::milliseconds connect_timeout, std::chrono::milliseconds command_timeout) {
  connect_timeout_ = connect_timeout;
  command_timeout_ = command_timeout;
}

void AsyncClient::arm_watchdog() {
  if (connect_timeout_.count() == 0 && command_timeout_.count() == 0) return;
  watchdog_.expires_after(std::chrono::milliseconds(100));
  watchdog_.async_wait([this, weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (ec || !self || stopping_) return;
    auto now = std::chrono::steady_clock::now();
    if (ac_ && !connected_ && connect_timeout_.count() > 0 && now - connect_started_ > connect_timeout_)
      drop_connection("connect timed out");
    else if (ac_ && connected_ && command_timeout_.count() > 0 && !sent_at_.empty() &&
             now - sent_at_.front() > command_timeout_)
      drop_connection("command timed out");
    arm_watchdog();
  });
}

void AsyncClient::drop_connection(const char* why) {
  PGC_LOG_WARN << name_ << ": " << why << " (" << host_ << ":" << port_ << "); reconnecting";
  redisAsyncContext* ac = ac_;
  ac_ = nullptr;
  bool was_connected = connected_;
  redisAsyncFree(ac);  // fails every pending command; on_disconnect runs if it was connected
  if (!was_connected) schedule_reconnect();
}

void AsyncClient::reconnect(const char* why) {
  if (ac_ && !stopping_) drop_connection(why);
}

AsyncClient::~AsyncClient() { stop(); }

void AsyncClient::start() {
  if (weak_from_this().expired())
    throw std::logic_error(name_ + ": AsyncClient must be owned by a std::shared_ptr (std::make_shared)");
  stopping_ = false;
  if (!ac_) connect_now();
  arm_watchdog();
}

void AsyncClient::stop() {
  stopping_ = true;
  reconnect_timer_.cancel();
  watchdog_.cancel();
  if (ac_) {
    redisAsyncContext* ac = ac_;
    ac_ = nullptr;
    redisAsyncFree(ac);  // runs pending callbacks with "connection lost"
  }
  connected_ = false;
}

void AsyncClient::connect_now() {
  redisAsyncContext* ac = redisAsyncConnect(host_.c_str(), port_);
  if (!ac) {
    schedule_reconnect();
    return;
  }
  if (ac->err) {
    PGC_LOG_WARN << name_ << ": cannot connect to " << host_ << ":" << port_ << ": " << ac->errstr;
    redisAsyncFree(ac);
    schedule_reconnect();
    return;
  }
  ac->data = this;
  connect_started_ = std::chrono::steady_clock::now();
  sent_at_.clear();
  auto events = std::make_shared<Events>(io_, ac);
  events->self = events;
  ac->ev.data = events.get();
  ac->ev.addRead = &Events::add_read;
  ac->ev.delRead = &Events::del_read;
  ac->ev.addWrite = &Events::add_write;
  ac->ev.delWrite = &Events::del_write;
  ac->ev.cleanup = &Events::cleanup;
  redisAsyncSetConnectCallback(ac, &AsyncClient::on_connect);
  redisAsyncSetDisconnectCallback(ac, &AsyncClient::on_disconnect);
  ac_ = ac;
  if (db_ != 0) {
    std::string db = std::to_string(db_);
    command({"SELECT", db}, [name = name_, db](Reply r) {
      if (r.is_error()) {
        PGC_LOG_ERROR << name << ": SELECT " << db << " failed: " << r.str;
      }
    });
  }
}

void AsyncClient::schedule_reconnect() {
  if (stopping_) return;
  reconnect_timer_.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(2000));
  reconnect_timer_.async_wait([this, weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (ec || !self || stopping_ || ac_) return;
    connect_now();
  });
}

void AsyncClient::set_state(bool up) {
  if (connected_ == up) return;
  connected_ = up;
  if (state_handler_)
    asio::post(io_, [this, up, weak = weak_from_this()] {
      auto self = weak.lock();
      if (self && state_handler_) state_handler_(up);
    });
}

void AsyncClient::on_connect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<AsyncClient*>(ac->data);
  if (status != REDIS_OK) {
    PGC_LOG_WARN << self->name_ << ": cannot connect to " << self->host_ << ":" << self->port_
                 << ": " << (ac->errstr ? ac->errstr : "error");
    self->ac_ = nullptr;  // hiredis frees the context after this callback
    self->schedule_reconnect();
    return;
  }
  PGC_LOG_INFO << self->name_ << ": connected to " << self->host_ << ":" << self->port_;
  self->backoff_ = std::chrono::milliseconds(50);
  self->set_state(true);
}

void AsyncClient::on_disconnect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<AsyncClient*>(ac->data);
  if (!self->stopping_) {
    PGC_LOG_WARN << self->name_ << ": connection lost (" << (status == REDIS_OK ? "closed" : ac->errstr)
                 << ")";
  }
  if (self->ac_ == ac) self->ac_ = nullptr;
  // hiredis has called every subscription callback for the last time; free them once it
  // has finished with the context.
  asio::post(self->io_, [subs = std::make_shared<decltype(subscriptions_)>(std::move(self->subscriptions_))] {});
  self->subscriptions_.clear();
  self->set_state(false);
  self->schedule_reconnect();
}

void AsyncClient::on_reply(redisAsyncContext*, void* reply, void* privdata) {
  std::unique_ptr<Pending> p(static_cast<Pending*>(privdata));
  auto self = p->client.lock();
  if (self) {
    --self->in_flight_;
    if (!self->sent_at_.empty()) self->sent_at_.pop_front();  // replies come in order
    if (self->collected_) {  // inside Events' read: completed when hiredis has returned
      self->collected_->push_back({std::move(p->done), copy_reply(reply)});
      return;
    }
  }
  asio::post(p->io, [done = std::move(p->done), r = copy_reply(reply)]() mutable { done(std::move(r)); });
}

void AsyncClient::cork() { ++corked_; }

void AsyncClient::uncork() {
  if (corked_ == 0 || --corked_ > 0 || !ac_ || stopping_) return;
  auto* e = static_cast<Events*>(ac_->ev.data);
  if (!e->want_write || e->write_pending || e->in_write || !e->connected()) return;
  auto keep = e->shared_from_this();
  e->write_now();
}

void AsyncClient::on_message(redisAsyncContext*, void* reply, void* privdata) {
  if (!reply) return;  // the connection is going away; the owner resubscribes on "up"
  auto* sub = static_cast<Subscription*>(privdata);
  asio::post(sub->self->io_, [handler = sub->handler, r = copy_reply(reply), weak = sub->self->weak_from_this()] {
    if (auto self = weak.lock()) handler(r);
  });
}

void AsyncClient::subscribe(std::vector<std::string> argv, Callback on_message_handler) {
  if (!ac_ || stopping_) return;
  std::vector<const char*> args;
  std::vector<std::size_t> lens;
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  subscriptions_.push_back(std::make_unique<Subscription>(Subscription{this, std::move(on_message_handler)}));
  redisAsyncCommandArgv(ac_, &AsyncClient::on_message, subscriptions_.back().get(), static_cast<int>(args.size()),
                        args.data(), lens.data());
}

void AsyncClient::command(std::vector<std::string> argv, Callback done) {
  if (!ac_ || stopping_) {
    asio::post(io_, [done = std::move(done)] { done(Reply::make_error("not connected")); });
    return;
  }
  std::vector<const char*> args;
  std::vector<std::size_t> lens;
  args.reserve(argv.size());
  lens.reserve(argv.size());
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* p = new Pending{io_, std::move(done), weak_from_this()};
  if (redisAsyncCommandArgv(ac_, &AsyncClient::on_reply, p, static_cast<int>(args.size()), args.data(),
                            lens.data()) != REDIS_OK) {
    std::unique_ptr<Pending> owned(p);
    asio::post(io_, [done = std::move(owned->done)] { done(Reply::make_error("command not sent")); });
    return;
  }
  ++in_flight_;
  sent_at_.push_back(std::chrono::steady_clock::now());
}

}  // namespace pgcohere::redis

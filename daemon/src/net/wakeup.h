// A one-shot signal a coroutine can co_await and another part of the same io_context can
// fire: cheaper than a timer for "wait until the pool hands you a connection" (no timer
// queue, no syscalls), and it resumes the waiter through its executor, never inline.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <memory>
#include <utility>

namespace pgcohere::net {

class Wakeup {
 public:
  template <typename Token>
  auto async_wait(Token&& token) {
    return boost::asio::async_initiate<Token, void()>(
        [this](auto handler) { pending_ = std::make_unique<Pending<decltype(handler)>>(std::move(handler)); },
        token);
  }
  // Resumes the waiter, if any (later, from the event loop).
  void notify() {
    if (!pending_) return;
    auto p = std::move(pending_);
    p->post();
  }
  bool waiting() const { return pending_ != nullptr; }

 private:
  struct Base {
    virtual ~Base() = default;
    virtual void post() = 0;
  };
  template <typename Handler>
  struct Pending : Base {
    explicit Pending(Handler h) : handler(std::move(h)) {}
    void post() override {
      auto ex = boost::asio::get_associated_executor(handler);
      boost::asio::post(ex, std::move(handler));
    }
    Handler handler;
  };
  std::unique_ptr<Base> pending_;
};

}  // namespace pgcohere::net

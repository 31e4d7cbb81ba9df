// A one-shot signal a coroutine can co_await and another part of the same io_context can
// fire: cheaper than a timer for "wait until the pool hands you a connection" (no timer
// queue, no syscalls), and it resumes the waiter through its executor, never inline.
#pragma once

#include <boost/asio/async_result.hpp>
#include <memory>
#include <utility>

#include "net/stored_handler.h"

namespace pgcohere::net {

class Wakeup {
 public:
  template <typename Token>
  auto async_wait(Token&& token) {
    return boost::asio::async_initiate<Token, void()>(
        [this](auto handler) { pending_ = StoredHandler::store(std::move(handler)); }, token);
  }
  // Resumes the waiter, if any (later, from the event loop).
  void notify() {
    if (!pending_) return;
    auto p = std::move(pending_);
    p->post();
  }
  bool waiting() const { return pending_ != nullptr; }

 private:
  std::unique_ptr<StoredHandler> pending_;
};

}  // namespace pgcohere::net

// Serializes the writers of one socket. Asio lets two async_writes on one socket run at
// once, and their chunks then interleave; every writer of a client socket (the server
// connection forwarding answers, the client's own errors, a timeout's last error) holds
// the gate for the whole message sequence it writes. Uncontended it costs a flag test.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <memory>
#include <utility>
#include <vector>

#include "net/stored_handler.h"

namespace pgcohere::net {

class WriteGate {
 public:
  // Takes the gate if it is free (the fast path: no allocation, no suspension).
  bool try_enter() {
    if (busy_) return false;
    busy_ = true;
    return true;
  }
  // Completes, through the handler's executor, once the caller holds the gate (first come,
  // first served).
  template <typename Token>
  auto async_enter(Token&& token) {
    return boost::asio::async_initiate<Token, void()>(
        [this](auto handler) {
          if (!busy_) {
            busy_ = true;
            auto ex = boost::asio::get_associated_executor(handler);
            boost::asio::post(ex, std::move(handler));
            return;
          }
          waiters_.push_back(StoredHandler::store(std::move(handler)));
        },
        token);
  }
  // Hands the gate to the next waiter, or frees it.
  void leave() {
    if (waiters_.empty()) {
      busy_ = false;
      return;
    }
    auto next = std::move(waiters_.front());
    waiters_.erase(waiters_.begin());
    next->post();  // busy_ stays set: the gate passes straight to the waiter
  }
  bool busy() const { return busy_; }

 private:
  bool busy_ = false;
  // A vector, not a deque: a second writer is rare and briefly queued, and an empty
  // std::deque allocates 576 bytes, which every idle client would hold.
  std::vector<std::unique_ptr<StoredHandler>> waiters_;
};

}  // namespace pgcohere::net

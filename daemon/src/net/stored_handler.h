// A completion handler kept for later (a coroutine waiting for a wakeup or for a socket's
// write gate) and resumed through its own executor, never inline from the caller.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/post.hpp>
#include <memory>
#include <utility>

namespace pgcohere::net {

class StoredHandler {
 public:
  virtual ~StoredHandler() = default;
  virtual void post() = 0;

  template <typename Handler>
  static std::unique_ptr<StoredHandler> store(Handler handler) {
    return std::make_unique<Impl<Handler>>(std::move(handler));
  }

 private:
  template <typename Handler>
  struct Impl;
};

template <typename Handler>
struct StoredHandler::Impl : StoredHandler {
  explicit Impl(Handler h) : handler(std::move(h)) {}
  void post() override {
    auto ex = boost::asio::get_associated_executor(handler);
    boost::asio::post(ex, std::move(handler));
  }
  Handler handler;
};

}  // namespace pgcohere::net

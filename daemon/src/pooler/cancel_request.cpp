// One CancelRequest on its own connection (see cancel_request.h).
#include "pooler/cancel_request.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <memory>
#include <string>

#include "protocol/messages.h"

// g++ 12 misreads Asio 1.18's coroutine frame allocator (a known false positive).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace pgcohere::pooler {

namespace asio = boost::asio;
using asio::use_awaitable;
using generic_stream = asio::generic::stream_protocol;

asio::awaitable<bool> send_cancel_request(asio::io_context& io, generic_stream::endpoint ep, std::int32_t pid,
                                          std::int32_t key, std::chrono::steady_clock::duration limit) {
  auto sock = std::make_shared<generic_stream::socket>(io);
  asio::steady_timer timer(io);
  timer.expires_after(limit);
  timer.async_wait([sock](const boost::system::error_code& ec) {
    boost::system::error_code ignored;
    if (!ec) sock->close(ignored);
  });
  boost::system::error_code ec;
  sock->open(ep.protocol(), ec);
  if (ec) co_return true;  // nothing was sent
  co_await sock->async_connect(ep, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return true;
  std::string out;
  protocol::encode::cancel_request(out, pid, key);
  co_await asio::async_write(*sock, asio::buffer(out), asio::redirect_error(use_awaitable, ec));
  if (!ec) {
    char b[16];
    co_await sock->async_read_some(asio::buffer(b), asio::redirect_error(use_awaitable, ec));
  }
  timer.cancel();
  co_return ec != asio::error::operation_aborted && ec != asio::error::bad_descriptor;
}

}  // namespace pgcohere::pooler
